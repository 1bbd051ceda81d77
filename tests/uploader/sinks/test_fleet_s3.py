"""The issue's "done when": S3_BUCKET_NAME (and an endpoint) set, `start` a real local fleet with the
archive enabled, and the same readings arrive once each in the local lake, the archive and the bucket.
Bad S3 input is one `error:` line (exit 2) before anything starts, or a failing diagnostics check."""
from __future__ import annotations

import json
import time

import pytest

from sensor_manager.cli import app
from tests.uploader.sinks.test_multi_sink import archive_keys, assert_once_each, bucket_keys, edge_counts, lake_keys

CONFIG = """\
project: s3-e2e
seed: 77
sensors_per_city: 2
runtime: local
simulation:
  readings_per_second: 20
  status_interval_seconds: 0.5
cities:
  - name: Berlin
uploader:
  interval_seconds: 1
  sinks:
    parquet: {enabled: true}
"""


def _cli(runner, project_dir, *args):
    result = runner.invoke(app, ["--project-dir", str(project_dir), *args])
    assert "Traceback" not in result.output, result.output
    return result


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def s3_project(s3, project_dir, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    (project_dir / "sensor-manager.yaml").write_text(CONFIG)
    return project_dir


@pytest.mark.slow
def test_a_local_fleet_with_the_seeds_s3_variables_lands_each_reading_once_in_lake_archive_and_bucket(
        s3, s3_project, runner, monkeypatch):
    bucket = s3.new_bucket()
    monkeypatch.setenv("S3_BUCKET_NAME", bucket)
    try:
        started = _cli(runner, s3_project, "start", "--wait", "--wait-timeout", "120", "--no-diagnostics")
        assert started.exit_code == 0, started.output
        _wait(lambda: sum(bucket_keys(s3, bucket, "delta").values()) > 100 and sum(archive_keys(s3_project).values()) > 100,
              90, "rows in the bucket and the archive")
        status = json.loads((s3_project / "state" / "status" / "uploader-berlin.json").read_text())
        assert set(status["sinks"]) == {"delta", "parquet", "s3"}
    finally:
        assert _cli(runner, s3_project, "stop").exit_code == 0
    drained = _cli(runner, s3_project, "upload", "--sqlite", str(s3_project / "data"), "--once")
    assert drained.exit_code == 0, drained.output
    edge = edge_counts(s3_project)
    assert len(edge) == 2
    assert_once_each(lake_keys(s3_project), edge, "delta")
    assert_once_each(archive_keys(s3_project), edge, "parquet")
    assert_once_each(bucket_keys(s3, bucket, "delta"), edge, "s3")
    sql = _cli(runner, s3_project, "databricks", "sql")
    assert f"LOCATION 's3a://{bucket}/sensor-manager/sensor_readings';" in sql.stdout


@pytest.mark.parametrize("setting, message", [
    ("S3_BUCKET_NAME=no-such-bucket-here", "bucket 'no-such-bucket-here' does not exist"),
    ("AWS_ENDPOINT_URL=http://127.0.0.1:9/", "cannot reach http://127.0.0.1:9"),
])
def test_start_with_an_s3_sink_that_cannot_work_is_one_error_line_exit_2_and_changes_nothing(
        s3, s3_project, runner, monkeypatch, tree_listing, setting, message):
    monkeypatch.setenv("S3_BUCKET_NAME", s3.new_bucket())
    name, value = setting.split("=", 1)
    monkeypatch.setenv(name, value)
    before = tree_listing(s3_project)
    result = _cli(runner, s3_project, "start")
    assert result.exit_code == 2, result.output
    assert "error: preflight: sink s3: s3: cannot put a probe object" in result.stderr and message in result.stderr
    assert tree_listing(s3_project) == before


def test_start_with_a_prefix_that_escapes_is_refused_on_load(s3, s3_project, runner, monkeypatch):
    monkeypatch.setenv("S3_BUCKET_NAME", s3.new_bucket())
    (s3_project / "sensor-manager.yaml").write_text(CONFIG + "    s3: {prefix: '../other-team'}\n")
    result = _cli(runner, s3_project, "start")
    assert result.exit_code == 2 and "uploader.sinks.s3.prefix" in result.stderr and "must be a plain key prefix" in result.stderr


def test_diagnostics_fails_the_s3_check_with_a_remedy_for_wrong_credentials(s3, s3_project, runner, monkeypatch):
    import moto.settings

    monkeypatch.setenv("S3_BUCKET_NAME", s3.new_bucket())
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # moto now checks keys against its IAM
    result = _cli(runner, s3_project, "diagnostics", "--json")
    [check] = [c for c in json.loads(result.stdout)["checks"] if c["name"] == "sink s3"]
    assert check["status"] == "fail" and "refuses the credentials (InvalidAccessKeyId)" in check["detail"]
    assert "AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY" in check["detail"] and "uploader.sinks.s3" in check["hint"]
    assert "testing" not in result.stdout  # the key itself is never shown
