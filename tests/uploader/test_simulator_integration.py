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
    assert set(table["city"].to_pylist()) == {"Berlin", "New_York"}
    assert set(table["location"].to_pylist()) == {"Berlin", "New York"}
    assert table["timestamp"].null_count == 0 and table["anomaly_flag"].null_count == 0
