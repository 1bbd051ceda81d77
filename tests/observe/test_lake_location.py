"""The lake the observe commands read: `uploader.sinks.delta.path` when set (finding 4), and a damaged
Delta log reported clearly (finding 5)."""
from __future__ import annotations

import json
import shutil

import pytest

from sensor_manager.cli import app
from sensor_manager.runtimes import record_runtime
from sensor_manager.runtimes.base import ServiceStatus


def run(runner, fleet, *args):
    result = runner.invoke(app, [*args, "--project-dir", str(fleet.root)])
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def moved_lake(fleet, tmp_path):
    """Amsterdam uploaded, then the table moved to where `uploader.sinks.delta.path` points (outside the project)."""
    fleet.upload("Amsterdam")
    table = tmp_path / "elsewhere" / "sensor_readings"
    table.parent.mkdir()
    shutil.move(fleet.layout.lake / "sensor_readings", table)
    (fleet.root / "sensor-manager.yaml").write_text(
        "project: obs-test\nsensors_per_city: 2\ncities:\n  - name: Amsterdam\n  - name: São Paulo\n"
        f"uploader:\n  sinks:\n    delta:\n      path: {table}\n")
    return table


def test_observe_commands_read_the_configured_lake(runner, fleet, moved_lake):
    uploaded = sum(fleet.uploaded.values())
    assert json.loads(run(runner, fleet, "query", "--source", "lake", "--count", "--json").stdout)["rows"] == [{"count": uploaded}]
    assert json.loads(run(runner, fleet, "query", "--sql", "SELECT count(*) AS n FROM sensor_readings", "--json").stdout)["rows"] == [{"n": uploaded}]
    snapshot = json.loads(run(runner, fleet, "monitor", "--once", "--json").stdout)
    assert {c["city"]: c["lag_rows"] for c in snapshot["cities"]}["Amsterdam"] == 0
    checks = {c["name"]: c for c in json.loads(run(runner, fleet, "diagnostics", "--json").stdout)["checks"]}
    assert checks["lake readable"]["status"] == "pass" and str(moved_lake) in checks["lake readable"]["detail"]
    assert str(moved_lake.parent) in checks["disk lake"]["detail"]


def test_relative_delta_path_is_relative_to_the_project(runner, fleet):
    fleet.upload("Amsterdam")
    shutil.move(fleet.layout.lake, fleet.root / "central")
    (fleet.root / "sensor-manager.yaml").write_text("uploader:\n  sinks:\n    delta:\n      path: central/sensor_readings\n")
    result = run(runner, fleet, "query", "--source", "lake", "--count", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == [{"count": sum(fleet.uploaded.values())}]


@pytest.fixture
def damaged_log(fleet):
    fleet.upload("Amsterdam", upto={s.sensor_id: 10 for s in fleet.city_sensors("Amsterdam")})
    fleet.upload("Amsterdam")
    entry = sorted((fleet.layout.lake / "sensor_readings" / "_delta_log").glob("*.json"))[-1]
    entry.write_text('{"add": {broken')
    return entry


def test_diagnostics_reports_a_damaged_log_as_a_failing_check(runner, fleet, damaged_log, monkeypatch):
    # A running project: the lag check reads the lake too, and used to end diagnostics with "unexpected DeltaError".
    record_runtime(fleet.layout, "local", "test")
    statuses = [ServiceStatus("uploader-amsterdam", "uploader", "Amsterdam", [], "running", "healthy", 0, 123)]
    monkeypatch.setattr("sensor_manager.observe.diagnostics.service_statuses", lambda layout: statuses)
    result = run(runner, fleet, "diagnostics", "--json")
    assert result.exit_code == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["lake readable"]["status"] == "fail"
    assert "Delta log" in checks["lake readable"]["hint"]
    assert checks["uploader lag"]["status"] == "skip"
    assert "error: 1 of" in result.stderr and "lake readable" in result.stderr and "error: unexpected" not in result.stderr


@pytest.mark.parametrize("args", [
    ("monitor", "--once"), ("monitor", "--once", "--json"), ("query", "--source", "lake"),
    ("query", "--sql", "SELECT 1"), ("clean", "--dry-run"),
], ids=["monitor", "monitor-json", "query-lake", "query-sql", "clean-dry-run"])
def test_lake_readers_say_the_log_is_damaged(runner, fleet, damaged_log, args):
    result = run(runner, fleet, *args)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and "error: unexpected" not in result.stderr
    assert "sensor_readings" in result.stderr and "Delta log" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
