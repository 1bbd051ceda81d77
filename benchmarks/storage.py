"""Bytes per row of an edge DB on disk: the normalised layout against the seed's flat table.

Writes a seeded backfill (one sensor, 1 reading/s) through the simulator, checkpoints it, and
divides the file size by the rows. Baseline, same run: the same rows copied into the seed
simulator's flat `sensor_readings` table with its two indexes. Target: <= 150 bytes/row.

    .venv/bin/python benchmarks/storage.py [--rows 200000] [--json]
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sensor_manager.simulator.db import READING_COLUMNS  # noqa: E402
from sensor_manager.simulator.runner import RunOptions, SensorSpec, run_simulation  # noqa: E402
from sensor_manager.simulator.settings import (  # noqa: E402
    AnomalySettings,
    DeviceSettings,
    NormalParameters,
    SimulationSettings,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from simulator_throughput import IDENTITY  # noqa: E402

SEED_DDL = """
CREATE TABLE sensor_readings (
  id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp TEXT NOT NULL, sensor_id TEXT NOT NULL,
  temperature REAL, humidity REAL, pressure REAL, vibration REAL, voltage REAL, status_code INTEGER,
  anomaly_flag INTEGER DEFAULT 0, anomaly_type TEXT, firmware_version TEXT, model TEXT, manufacturer TEXT,
  location TEXT, latitude REAL, longitude REAL, original_timezone TEXT, serial_number TEXT,
  manufacture_date TEXT, deployment_type TEXT, installation_date TEXT, height_meters REAL,
  orientation_degrees REAL, instance_id TEXT, sensor_type TEXT, seq INTEGER);
CREATE INDEX idx_timestamp ON sensor_readings(timestamp);
CREATE INDEX idx_sensor_id ON sensor_readings(sensor_id);
"""


def normalised(root: Path, rows: int) -> tuple[float, int, Path]:
    options = RunOptions(
        simulation=SimulationSettings(readings_per_second=1.0, run_time_seconds=0.001),
        normal_parameters=NormalParameters(), anomalies=AnomalySettings(), devices=DeviceSettings(),
        backfill_seconds=float(rows),
    )
    spec = SensorSpec(IDENTITY, root / "sensor")
    summary = run_simulation([spec], options)  # closes with a TRUNCATE checkpoint
    path = spec.directory / "sensor_data.db"
    return path.stat().st_size / summary.rows_written, summary.rows_written, path


def flat(root: Path, source: Path) -> float:
    target = root / "flat.db"
    conn = sqlite3.connect(target)
    conn.executescript(SEED_DDL)
    conn.execute(f"ATTACH DATABASE 'file:{source}?mode=ro' AS src")
    columns = ", ".join(READING_COLUMNS[:READING_COLUMNS.index("seq") + 1])  # the seed had no fault labels
    conn.execute(f"INSERT INTO sensor_readings ({columns}) SELECT {columns} FROM src.sensor_readings ORDER BY id")
    conn.commit()
    rows = conn.execute("SELECT count(*) FROM sensor_readings").fetchone()[0]
    conn.close()
    return target.stat().st_size / rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        value, rows, path = normalised(Path(tmp), args.rows)
        base = flat(Path(tmp), path)
    result = {"name": "storage", "value": round(value, 1), "baseline": round(base, 1),
              "ratio": round(value / base, 3), "unit": "bytes/row"}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"normalised: {value:.1f} bytes/row over {rows:,} rows; seed's flat table: {base:.1f} bytes/row; "
              f"ratio {value / base:.2f}")


if __name__ == "__main__":
    main()
