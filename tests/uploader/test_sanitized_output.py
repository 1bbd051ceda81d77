"""Sanitized output of a real simulated fleet, scanned column by column: no coordinate finer than the
configured precision and no raw serial number or instance id anywhere."""
from __future__ import annotations

import re
import sqlite3
import subprocess
import sys

from uploader.invocation import resolve_invocation
from uploader.pipeline import Uploader
from uploader.settings import UploaderSettings


def test_no_column_of_sanitized_rows_holds_a_precise_coordinate_or_a_raw_device_id(tmp_path, lake_rows):
    project = tmp_path / "sim"
    made = subprocess.run([sys.executable, "-m", "sensor_manager", "simulate", "--project-dir", str(project),
                           "--cities", "Berlin,New York", "--sensors-per-city", "2", "--rate", "1", "--backfill", "10m",
                           "--duration", "0.1", "-q"], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    identifiers, coordinates = set(), set()
    for db in (project / "data").rglob("sensor_data.db"):
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            for serial, instance, latitude, longitude in con.execute(
                    "SELECT DISTINCT serial_number, instance_id, latitude, longitude FROM sensor_readings"):
                identifiers |= {value for value in (serial, instance) if value}
                coordinates |= {value for value in (latitude, longitude) if value is not None and round(value, 2) != value}
    assert identifiers and coordinates  # the fleet has something to hide
    settings = UploaderSettings.model_validate({"stage": "sanitized", "sanitized": {"coordinate_decimals": 2}})
    uploader = Uploader(resolve_invocation(sqlite=project / "data", settings=settings, project_dir=project))
    try:
        assert uploader.run_once()
    finally:
        uploader.close()
    table = lake_rows(project / "lake" / "sensor_readings")
    assert table.num_rows > 1_000 and set(table["stage"].to_pylist()) == {"sanitized"}
    finer = re.compile(r"\d\.\d{3,}")
    for name in table.column_names:
        for value in set(table[name].to_pylist()):
            text = str(value)
            assert not any(identifier in text for identifier in identifiers), (name, value)
            assert value not in coordinates, (name, value)
            if name in ("latitude", "longitude") or isinstance(value, str):
                assert not finer.search(text), (name, value)
    assert {round(v, 2) for v in table["latitude"].to_pylist()} == set(table["latitude"].to_pylist())
