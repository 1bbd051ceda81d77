"""monitor, query and diagnostics on a fleet made by the real `simulate --backfill` and `python -m uploader --once`."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sensor_manager.cli import app
from sensor_manager.layout import ProjectLayout
from sensor_manager.plan import load_plan

CONFIG = "project: obs-real\nsensors_per_city: 2\ncities:\n  - name: Amsterdam\n  - name: São Paulo\n"


def invoke(runner, *args):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    return result


def upload(project: Path, city: str) -> None:
    subprocess.run([sys.executable, "-m", "uploader", "--sqlite", str(project / "data" / city), "--project-dir", str(project), "--once"],
                   check=True, capture_output=True, timeout=120)


def count(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT count(*) FROM sensor_readings").fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def real_fleet(runner, project_dir):
    (project_dir / "sensor-manager.yaml").write_text(CONFIG)
    result = invoke(runner, "simulate", "--project-dir", str(project_dir), "--backfill", "60s", "--duration", "1", "--rate", "2")
    assert result.exit_code == 0, result.output
    upload(project_dir, "Amsterdam")
    return project_dir


@pytest.mark.slow
def test_real_fleet_numbers_lag_query_and_diagnostics(runner, real_fleet):
    project = str(real_fleet)
    plan = load_plan(ProjectLayout.at(real_fleet))
    rows = {s.sensor_id: count(real_fleet / s.db_path) for s in plan.sensors}
    snapshot = json.loads(invoke(runner, "monitor", "--project-dir", project, "--once", "--json").stdout)
    assert {s["sensor_id"]: s["rows"] for s in snapshot["sensors"]} == rows
    cities = {c["city"]: c for c in snapshot["cities"]}
    amsterdam = sum(v for k, v in rows.items() if k.startswith("Amsterdam_"))
    sao_paulo = sum(v for k, v in rows.items() if k.startswith("Sao_Paulo_"))
    assert cities["Amsterdam"]["rows"] == amsterdam and cities["Amsterdam"]["lag_rows"] == 0
    assert cities["Sao_Paulo"]["rows"] == sao_paulo and cities["Sao_Paulo"]["lag_rows"] == sao_paulo > 0
    assert cities["Sao_Paulo"]["lag_seconds"] >= 50  # its oldest row is from the start of the 60 s backfill

    lake = json.loads(invoke(runner, "query", "--project-dir", project, "--source", "lake", "--count", "--json").stdout)
    assert lake["rows"] == [{"count": amsterdam}]
    edge = json.loads(invoke(runner, "query", "--project-dir", project, "--count", "--json").stdout)
    assert edge["rows"] == [{"count": amsterdam + sao_paulo}]
    hourly = json.loads(invoke(runner, "query", "--project-dir", project, "--json", "--sql",
                               "SELECT city, count(*) AS n, avg(temperature) AS t FROM sensor_readings GROUP BY city").stdout)
    assert [(r["city"], r["n"]) for r in hourly["rows"]] == [("Amsterdam", amsterdam)] and 50 < hourly["rows"][0]["t"] < 80

    diagnostics = invoke(runner, "diagnostics", "--project-dir", project, "--json")
    assert diagnostics.exit_code == 0, diagnostics.output
    checks = {c["name"]: c["status"] for c in json.loads(diagnostics.stdout)["checks"]}
    assert all(checks[f"db {s.sensor_id}"] == "pass" for s in plan.sensors)

    # More readings arrive while Amsterdam's uploader is not running: lag rises; the next upload drains it.
    assert invoke(runner, "simulate", "--project-dir", project, "--duration", "1", "--rate", "5").exit_code == 0
    risen = {c["city"]: c for c in json.loads(invoke(runner, "monitor", "--project-dir", project, "--once", "--json").stdout)["cities"]}
    assert risen["Amsterdam"]["lag_rows"] > 0 and risen["Amsterdam"]["rows"] > amsterdam
    upload(real_fleet, "Amsterdam")
    fallen = {c["city"]: c for c in json.loads(invoke(runner, "monitor", "--project-dir", project, "--once", "--json").stdout)["cities"]}
    assert fallen["Amsterdam"]["lag_rows"] == 0 and fallen["Amsterdam"]["rows"] == risen["Amsterdam"]["rows"]
