"""`archive compact` and `databricks sql`: commands that read a sink's settings and act on what it wrote."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from sensor_manager.cli import app
from tests.uploader.sinks.conftest import make_batch
from uploader.sinks.parquet import ParquetArchiveSink


def invoke(runner, project_dir, *args, env=None):
    return runner.invoke(app, ["--project-dir", str(project_dir), *args], env=env)


def test_databricks_sql_points_at_the_delta_table_the_s3_sink_writes(runner, project_dir):
    result = invoke(runner, project_dir, "databricks", "sql", env={"S3_BUCKET_NAME": "fleet-bucket"})
    assert result.exit_code == 0, result.output
    assert "CREATE SCHEMA IF NOT EXISTS sensor_demo;" in result.stdout
    assert "USING DELTA\nLOCATION 's3a://fleet-bucket/sensor-manager/sensor_readings';" in result.stdout
    policy = json.loads(result.stdout[result.stdout.index("{"):])
    actions = {a for s in policy["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert actions == {"s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:DeleteObject"}
    [delete] = [s for s in policy["Statement"] if s["Action"] == "s3:DeleteObject"]
    assert delete["Sid"] == "DeleteForCleanAndRecovery" and delete["Resource"] == "arn:aws:s3:::fleet-bucket/sensor-manager/*"


def test_databricks_sql_for_the_parquet_layout_is_an_auto_loader_cell_over_the_prefix(runner, project_dir):
    (project_dir / "sensor-manager.yaml").write_text(
        "uploader:\n  sinks:\n    s3: {bucket: fleet-bucket, prefix: readings/eu, layout: parquet}\n")
    result = invoke(runner, project_dir, "databricks", "sql")
    assert result.exit_code == 0, result.output
    assert 'spark.readStream.format("cloudFiles")' in result.stdout
    assert '.option("cloudFiles.format", "parquet")' in result.stdout
    assert '.load("s3a://fleet-bucket/readings/eu/")' in result.stdout
    assert "USING DELTA\nLOCATION" not in result.stdout


@pytest.mark.parametrize("config, message", [
    ("", "error: uploader.sinks.s3.bucket is not set"),
    ("uploader:\n  sinks:\n    s3: {bucket: b1, prefix: '../x'}\n", "uploader.sinks.s3.prefix"),
])
def test_databricks_sql_without_a_usable_bucket_is_one_error_line_exit_2(runner, project_dir, config, message):
    (project_dir / "sensor-manager.yaml").write_text(config or "project: sensor-demo\n")
    result = invoke(runner, project_dir, "databricks", "sql")
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output


def test_archive_compact_builds_each_sensors_consolidated_view(runner, project_dir):
    archive = ParquetArchiveSink(project_dir / "archive")
    archive.write(make_batch(0, 10))
    archive.write(make_batch(10, 25))
    result = invoke(runner, project_dir, "archive", "compact")
    assert result.exit_code == 0, result.output
    [view] = list((project_dir / "archive").glob("*/*.parquet"))
    assert sorted(pq.read_table(view)["seq"].to_pylist()) == list(range(1, 26))
    assert "2 new parts, 25 rows written" in result.stdout
    again = invoke(runner, project_dir, "archive", "compact")
    assert again.exit_code == 0 and "Compacted 0 of 1 sensors" in again.stderr
