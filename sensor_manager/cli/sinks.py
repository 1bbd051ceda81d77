"""`archive compact` and `databricks sql`: the commands that belong to one sink → uploader/sinks/, databricks.py."""
from __future__ import annotations

import typer

from sensor_manager.cli import app
from sensor_manager.cli.options import session
from sensor_manager.cli.output import info, results

archive_app = typer.Typer(help="The Parquet archive (uploader.sinks.parquet).", no_args_is_help=True)
app.add_typer(archive_app, name="archive")
databricks_app = typer.Typer(help="Databricks over the S3 sink (uploader.sinks.s3).", no_args_is_help=True)
app.add_typer(databricks_app, name="databricks")


@archive_app.command("compact")
def compact(ctx: typer.Context) -> None:
    """Fold new archive part files into each sensor's consolidated view <City>/<CODE>.parquet (atomic; cost grows with the new data only).

    Example: ./sensor_manager.py archive compact
    """
    from sensor_manager.lifecycle import sink_context
    from uploader.sinks.parquet import ParquetSinkSettings, archive_root
    from uploader.sinks.parquet import compact as compact_archive

    s = session(ctx)
    cfg = s.load_config()
    settings = cfg.uploader.sinks.named("parquet")
    assert isinstance(settings, ParquetSinkSettings)
    root = archive_root(settings, sink_context(s.layout, cfg))
    done = compact_archive(root)
    for step in done:
        if step.new_parts:
            results().print(f"{step.view}: {step.new_parts} new parts, {step.rows_written} rows written, {step.segments} segments")
    info(f"Compacted {sum(1 for d in done if d.new_parts)} of {len(done)} sensors under {root}.", s.quiet)


@databricks_app.command("sql")
def sql(ctx: typer.Context) -> None:
    """Print the SQL (CREATE SCHEMA/TABLE … LOCATION 's3a://…') or Auto Loader cell for the configured bucket, and the IAM policy.

    Example: S3_BUCKET_NAME=my-bucket ./sensor_manager.py databricks sql
    """
    from sensor_manager import databricks
    from uploader.sinks.s3 import S3SinkSettings

    cfg = session(ctx).load_config()
    settings = cfg.uploader.sinks.named("s3")
    assert isinstance(settings, S3SinkSettings)
    results().print(databricks.render(settings, cfg.project), markup=False, highlight=False, end="")
