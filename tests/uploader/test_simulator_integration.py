"""The real simulator's DBs (the `sensor_readings` view over normalised tables) ship exactly once."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections import Counter

from uploader.pipeline import Uploader


def test_simulated_fleet_ships_every_reading_once(tmp_path, lake_rows):
    from uploader.invocation import resolve_invocation
    from uploader.settings import UploaderSettings

    project = tmp_path / "sim"
    made = subprocess.run([sys.executable, "-m", "sensor_manager", "simulate", "--project-dir", str(project),
                           "--cities", "Berlin,New York", "--sensors-per-city", "2", "--rate", "1", "--backfill", "20m",
                           "--duration", "0.1", "-q"], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    dbs = sorted((project / "data").rglob("sensor_data.db"))
    assert len(dbs) == 4
    expected = {}
    for db in dbs:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            sensor_id, count = con.execute("SELECT min(sensor_id), count(*) FROM sensor_readings").fetchone()
            expected[sensor_id] = count
    invocation = resolve_invocation(sqlite=project / "data" / "New_York", settings=UploaderSettings(), project_dir=project)
    assert invocation.uploader_id == "new-york"
    for sqlite in (project / "data" / "New_York", project / "data" / "Berlin", project / "data"):
        uploader = Uploader(resolve_invocation(sqlite=sqlite, settings=UploaderSettings(), project_dir=project))
        try:
            assert uploader.run_once()
        finally:
            uploader.close()
    table = lake_rows(project / "lake" / "sensor_readings")
    assert Counter(table["sensor_id"].to_pylist()) == expected
    assert max(Counter(zip(table["sensor_id"].to_pylist(), table["seq"].to_pylist(), strict=True)).values()) == 1
    assert set(table["city"].to_pylist()) == {"Berlin", "New York"}
    assert set(table["location"].to_pylist()) == {"Berlin", "New York"}
    assert table["timestamp"].null_count == 0 and table["anomaly_flag"].null_count == 0


def _simulate(project, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sensor_manager", "simulate", "--project-dir", str(project), "--cities", "Berlin",
                           "--sensors-per-city", "2", "--rate", "1", "--backfill", "1m", "--duration", "0.1", "-q", *extra],
                          capture_output=True, text=True, timeout=120)


def _upload(project) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "uploader", "--sqlite", str(project / "data"), "--project-dir", str(project)],
                          capture_output=True, text=True, timeout=120)


def _edge_rows(project) -> int:
    total = 0
    for db in (project / "data").rglob("sensor_data.db"):
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            total += con.execute("SELECT count(*) FROM readings").fetchone()[0]
    return total


def test_the_fleet_epoch_lives_with_the_data_not_only_in_state(tmp_path, lake_rows):
    import json
    import shutil

    project = tmp_path / "epochs"
    assert _simulate(project).returncode == 0
    shutil.rmtree(project / "data")  # what `reset` does, then it bumps the epoch
    plan_file = project / "state" / "plan.json"
    plan_file.write_text(json.dumps({**json.loads(plan_file.read_text()), "fleet_epoch": 2}))
    assert _simulate(project).returncode == 0
    assert _upload(project).returncode == 0
    shipped = _edge_rows(project)
    table = lake_rows(project / "lake" / "sensor_readings")
    assert table.num_rows == shipped and set(table["fleet_epoch"].to_pylist()) == {2}

    good_plan = plan_file.read_text()
    plan_file.write_text('{"broken')
    refused = _upload(project)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.splitlines()[-1].startswith(f"error: {plan_file}: cannot read the stored plan")
    assert lake_rows(project / "lake" / "sensor_readings").num_rows == shipped

    plan_file.write_text(json.dumps({**json.loads(good_plan), "fleet_epoch": 1}))  # a replaced plan
    for refused in (_simulate(project), _upload(project)):
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        assert "sensor_data.db: its readings belong to fleet_epoch 2 but the plan says 1" in refused.stderr
    assert json.loads((project / "state" / "status" / "uploader-default.json").read_text())["state"] == "failing"
    assert lake_rows(project / "lake" / "sensor_readings").num_rows == shipped

    shutil.rmtree(project / "state")  # a lost state/: the next plan takes its epoch from the sensor DBs
    assert _simulate(project).returncode == 0
    assert json.loads(plan_file.read_text())["fleet_epoch"] == 2
    assert _upload(project).returncode == 0
    table = lake_rows(project / "lake" / "sensor_readings")
    assert table.num_rows == _edge_rows(project) > shipped and set(table["fleet_epoch"].to_pylist()) == {2}
    assert max(Counter(zip(table["sensor_id"].to_pylist(), table["seq"].to_pylist(), strict=True)).values()) == 1
