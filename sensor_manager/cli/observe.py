"""Observability commands: monitor, diagnostics, query (→ sensor_manager/observe/)."""
from __future__ import annotations

import csv
import io
import sys
import time
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from fleetcore.errors import SensorManagerError, UsageError
from sensor_manager.cli import app
from sensor_manager.cli.options import CosmosConfigOpt, JsonOpt, session
from sensor_manager.cli.output import info, print_json, print_ndjson, results
from sensor_manager.plan import load_plan

if TYPE_CHECKING:
    from sensor_manager.observe.readings import DatabaseReport, QueryResult

# The observe library pulls in duckdb, pyarrow, sqlite-utils and plotext: imported inside the
# commands so `--help` and every other command start fast.


class SourceChoice(str, Enum):
    edge = "edge"
    lake = "lake"
    archive = "archive"
    s3 = "s3"
    cosmos = "cosmos"


class FormatChoice(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _wide(console: Console) -> Console:
    """Pipes and files get whole cells instead of cells cut to 80 columns."""
    if not console.is_terminal:
        console.width = 10_000
    return console


def _render_rows(result: QueryResult, fmt: FormatChoice) -> None:
    if fmt is FormatChoice.json:
        print_json(result.to_json())
    elif fmt is FormatChoice.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=result.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(result.rows)
    else:
        table = Table(*result.columns, box=None, header_style="bold")
        for row in result.rows:
            table.add_row(*(_cell(row.get(c)) for c in result.columns))
        _wide(results()).print(table)


def _render_reports(reports: list[DatabaseReport], fmt: FormatChoice) -> None:
    from sensor_manager.observe.readings import SCHEMA_VERSION

    if fmt is FormatChoice.json:
        print_json({"schema_version": SCHEMA_VERSION, "databases": [r.to_dict() for r in reports]})
        return
    if fmt is FormatChoice.csv:
        raise UsageError("--all prints a report: use --format table or json")
    out = results()
    for report in reports:
        out.rule(report.path)
        if report.error:
            out.print(f"error: {report.error}")
            continue
        out.print(f"City: {_cell(report.city)}, Sensor: {_cell(report.sensor_id)}")
        out.print(f"File size: {report.size_bytes} bytes (WAL {report.wal_bytes} bytes)")
        out.print("Table schema:")
        for statement in report.schema:
            out.print(statement)
        out.print(f"Total records: {report.rows}")
        out.print("Sample records:")
        sample = Table("id", "sensor_id", "timestamp", "temperature", "location", box=None)
        for row in report.sample:
            sample.add_row(*(_cell(row.get(c, row.get("source_id") if c == "id" else None)) for c in ("id", "sensor_id", "timestamp", "temperature", "location")))
        out.print(sample)
        out.print(f"Unique sensor_id values: {', '.join(map(_cell, report.sensor_ids))}")
        out.print(f"Unique location values: {', '.join(map(_cell, report.locations))}")


def _one_mode(**modes: bool) -> None:
    chosen = [name for name, on in modes.items() if on]
    if len(chosen) > 1:
        raise UsageError(f"choose one of {', '.join('--' + m.replace('_', '-') for m in modes)}; got {', '.join('--' + m.replace('_', '-') for m in chosen)}")


@app.command("query")
def query(
    ctx: typer.Context,
    source: Annotated[Optional[SourceChoice], typer.Option("--source", help="edge: the sensor DBs (default); lake: the Delta table; archive: the Parquet archive; s3: the S3 sink's bucket; cosmos: the Cosmos sink's container.", show_default=False)] = None,
    list_: Annotated[bool, typer.Option("--list", help="Sensors with row counts and first/last timestamp.")] = False,
    all_: Annotated[bool, typer.Option("--all", help="Per-DB report: schema, count, sample rows, distinct ids and locations.")] = False,
    sensor_id: Annotated[Optional[str], typer.Option("--sensor-id", "--sensor", help="Only this sensor.", show_default=False)] = None,
    city: Annotated[Optional[str], typer.Option("--city", help="Only this city (display or safe name, any case).", show_default=False)] = None,
    since: Annotated[Optional[str], typer.Option("--since", help="Only readings since: 10m, 2h, 1d or an ISO time (UTC).", show_default=False)] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Newest N readings (default 10; 1000 with --plot; Cosmos SQL TOP N).", show_default=False)] = None,
    count: Annotated[bool, typer.Option("--count", help="Count the matching readings.")] = False,
    latest: Annotated[bool, typer.Option("--latest", help="The newest reading of each sensor.")] = False,
    sql: Annotated[Optional[str], typer.Option("--sql", help="Read-only DuckDB SQL over sensor_readings of the lake (default), archive or s3; with --source cosmos a Cosmos SQL SELECT over the container (c).", show_default=False)] = None,
    param: Annotated[Optional[list[str]], typer.Option("--param", help="A Cosmos SQL parameter for --sql, NAME=VALUE (JSON, else text), used as @NAME; repeatable.", metavar="NAME=VALUE", show_default=False)] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Stop a --sql query after this many seconds (Ctrl-C stops it at once).")] = 300.0,
    plot: Annotated[Optional[str], typer.Option("--plot", help="Draw METRIC over time (temperature, humidity, pressure, vibration, voltage).", metavar="METRIC", show_default=False)] = None,
    fmt: Annotated[FormatChoice, typer.Option("--format", help="Output format.")] = FormatChoice.table,
    cosmos_config: CosmosConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """Read sensor readings from the edge DBs (read-only), the lake, the Parquet archive, the S3 bucket or Cosmos DB.

    Example: ./sensor_manager.py query --source lake --sql "SELECT city, date_trunc('hour', timestamp) AS hour, avg(temperature) FROM sensor_readings GROUP BY ALL ORDER BY ALL"
    """
    from sensor_manager.durations import parse_since
    from sensor_manager.observe import lake
    from sensor_manager.observe.query import reading_source, sql_source
    from sensor_manager.observe.readings import METRICS, Filters, check_limit
    opts = session(ctx, json=json, cosmos_config=cosmos_config)
    _one_mode(list=list_, all=all_, count=count, latest=latest, sql=sql is not None, plot=plot is not None)
    fmt = FormatChoice.json if json else fmt
    layout = opts.layout
    name = "lake" if source is None and sql is not None else (source or SourceChoice.edge).value
    project_config = opts.load_config() if name != "edge" else None
    if name == "lake":
        layout = lake.with_configured_lake(layout, project_config)
    if param and (sql is None or name != "cosmos"):
        raise UsageError("--param binds parameters of a Cosmos SQL query: use it with --source cosmos --sql")
    if sql is not None:
        from sensor_manager.observe.cosmos_source import CosmosSource, parse_parameters

        over = sql_source(layout, name, project_config)
        found = over.sql(sql, timeout, parse_parameters(param or [])) if isinstance(over, CosmosSource) else over.sql(sql, timeout)
        _render_rows(found, fmt)
        return
    plan = load_plan(layout)
    filters = Filters(sensor_id=sensor_id, city=city, since=None if since is None else parse_since(since))
    if plot is not None and plot not in METRICS:
        raise UsageError(f"--plot {plot!r}: choose one of {', '.join(METRICS)}")
    readings = reading_source(layout, plan, name, project_config)
    if plot is not None:
        from sensor_manager.observe.plot import plot_metric  # plotext alone takes longer to import than a query runs

        rows = readings.readings(filters, check_limit(limit or 1000)).rows
        results().print(plot_metric(rows, plot), markup=False, highlight=False)
    elif all_:
        _render_reports(readings.report(filters), fmt)
    elif list_:
        _render_rows(readings.list_sensors(filters), fmt)
    elif count:
        _render_rows(readings.count(filters), fmt)
    elif latest:
        _render_rows(readings.latest(filters), fmt)
    else:
        _render_rows(readings.readings(filters, check_limit(10 if limit is None else limit)), fmt)


def _plain_text(renderable) -> str:
    """Render without any escape code, whatever the terminal: `monitor --plain`."""
    buffer = io.StringIO()
    Console(file=buffer, force_terminal=False, color_system=None, width=200, highlight=False).print(renderable)
    return buffer.getvalue()


@app.command("monitor")
def monitor(
    ctx: typer.Context,
    city: Annotated[Optional[str], typer.Option("--city", help="One row per sensor of this city.", show_default=False)] = None,
    once: Annotated[bool, typer.Option("--once", help="Print one snapshot and exit.")] = False,
    plain: Annotated[bool, typer.Option("--plain", help="One snapshot as plain text, no colours or escape codes.")] = False,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between refreshes.", min=0.5)] = 2.0,
    json: Annotated[bool, typer.Option("--json", help="With --once one JSON document; otherwise NDJSON, one line per refresh.")] = False,
) -> None:
    """Live dashboard of the fleet: rates, rows, lag and uploads per city (read-only; works on a stopped project).

    Example: ./sensor_manager.py monitor --city Amsterdam
    """
    from sensor_manager.observe import dashboard, lake
    from sensor_manager.observe.monitor import Monitor
    opts = session(ctx, json=json)
    layout = lake.with_configured_lake(opts.layout, opts.load_config())
    watch = Monitor(layout, load_plan(layout))
    slug = watch.city(city) if city else None

    def take():
        snap = watch.refresh()
        return snap.only(slug) if slug else snap

    try:
        if json and once:
            print_json(take().to_json())
        elif plain:
            sys.stdout.write(_plain_text(dashboard.render(take(), slug)))
        elif once:
            results().print(dashboard.render(take(), slug))
        elif json:
            _stream(lambda: print_ndjson(take().to_json()), interval, first=True)
        else:
            with Live(dashboard.render(take(), slug), console=results(), auto_refresh=False) as live:
                _stream(lambda: live.update(dashboard.render(take(), slug), refresh=True), interval)
    finally:
        watch.close()


def _stream(step, interval: float, first: bool = False) -> None:
    """Run `step` (now when `first`, then) every `interval` seconds until Ctrl-C, which ends the command with exit 0."""
    try:
        if first:
            step()
        while True:
            time.sleep(interval)
            step()
    except KeyboardInterrupt:
        return


MARKS = {"pass": "✓", "warn": "!", "fail": "✗", "skip": "-"}


@app.command("diagnostics")
def diagnostics(
    ctx: typer.Context,
    bundle: Annotated[Optional[Path], typer.Option("--bundle", help="Also write a redacted support bundle (tar.gz).", metavar="FILE.tar.gz", show_default=False)] = None,
    cosmos_config: CosmosConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """Check config, runtime, services, DBs, disk, lake, sinks (the Cosmos account too) and lag; exit 1 when a check fails.

    Example: ./sensor_manager.py diagnostics --bundle support.tar.gz
    """
    from sensor_manager.observe.bundle import write_bundle
    from sensor_manager.observe.diagnostics import run_diagnostics
    opts = session(ctx, json=json, cosmos_config=cosmos_config)
    report = run_diagnostics(opts.layout, opts.load_config)
    if json:
        print_json(report.to_json())
    else:
        out = results()
        for check in report.checks:
            hint = f"  → {check.hint}" if check.hint and check.status in ("warn", "fail") else ""
            out.print(f"{MARKS[check.status]} {check.name}: {check.detail}{hint}", markup=False)
    if bundle is not None:
        try:
            loaded = opts.load_config()
        except UsageError:
            loaded = None
        members = write_bundle(bundle, opts.layout, report, loaded, load_plan(opts.layout))
        info(f"Bundle written: {bundle} ({len(members)} files)", quiet=opts.quiet or json)
    if not report.ok:
        failed = [c.name for c in report.checks if c.status == "fail"]
        raise SensorManagerError(f"{len(failed)} of {len(report.checks)} checks failed: {', '.join(failed)}")
