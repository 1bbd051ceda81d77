"""Unpaced simulator throughput: readings/s persisted by one process (one sensor, backfill mode).

Baseline, measured in the same run: a raw `executemany` of the same rows (pre-built tuples) into
the same schema with the same pragmas and the same rows per commit -- the cost of persisting alone.
Target: >= 100,000 readings/s and ratio >= 0.7.

    .venv/bin/python benchmarks/simulator_throughput.py [--rows 1000000] [--faults] [--json]

`--faults` runs the simulator with every delivery fault on at its default rate (`faults.enabled`).
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sensor_manager.simulator import db  # noqa: E402
from sensor_manager.simulator.identity import SensorIdentity  # noqa: E402
from sensor_manager.simulator.runner import RunOptions, SensorSpec, run_simulation  # noqa: E402
from sensor_manager.simulator.settings import (  # noqa: E402
    AnomalySettings,
    DeviceSettings,
    FaultSettings,
    NormalParameters,
    SimulationSettings,
)
from sensor_manager.simulator.writer import SensorWriter  # noqa: E402

RATE = 10_000.0
IDENTITY = SensorIdentity(
    sensor_id="Berlin_BENCH", location="Berlin", latitude=52.52, longitude=13.405, timezone="Europe/Berlin",
    manufacturer="EnvSense", model="TempVibe-2000", firmware_version="2.0.1", serial_number="SENSOR-000001",
    manufacture_date="2022-01-01", deployment_type="rooftop", installation_date="2022-03-01", height_meters=3.0,
    orientation_degrees=90.0, instance_id="i-0000000000000001", sensor_type="environmental_monitoring", seed=1,
)


def simulate(root: Path, rows: int, faults: FaultSettings) -> tuple[float, Path]:
    options = RunOptions(
        simulation=SimulationSettings(readings_per_second=RATE, run_time_seconds=0.001),
        normal_parameters=NormalParameters(), anomalies=AnomalySettings(), devices=DeviceSettings(),
        backfill_seconds=rows / RATE, faults=faults,
    )
    spec = SensorSpec(IDENTITY, root / "sim")
    started = time.perf_counter()
    summary = run_simulation([spec], options)
    elapsed = time.perf_counter() - started
    return summary.rows_written / elapsed, spec.directory / "sensor_data.db"


def baseline(root: Path, source: Path, batch: int) -> float:
    rows = sqlite3.connect(source).execute(
        "SELECT seq, ts_ms, utc_offset_min, identity_id, temperature, humidity, pressure, vibration, voltage, anomaly"
        " FROM readings ORDER BY seq").fetchall()
    writer = SensorWriter(root / "raw", replace(IDENTITY))
    writer.open()
    conn = writer.connection
    started = time.perf_counter()
    for start in range(0, len(rows), batch):
        conn.execute("BEGIN")
        conn.executemany(db.INSERT_READING_SQL, rows[start:start + batch])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    writer.close()
    return len(rows) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each side counts")
    parser.add_argument("--faults", action="store_true", help="every delivery fault on at its default rate")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    faults = FaultSettings(enabled=args.faults)
    value = base = 0.0
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            simulated, source = simulate(root, args.rows, faults)
            value = max(value, simulated)
            base = max(base, baseline(root, source, SimulationSettings().commit_max_rows))
    result = {"name": "simulator_throughput_faults" if args.faults else "simulator_throughput", "value": round(value), "baseline": round(base),
              "ratio": round(value / base, 3), "unit": "readings/s"}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"simulator: {value:,.0f} readings/s; raw executemany: {base:,.0f} rows/s; ratio {value / base:.2f}")


if __name__ == "__main__":
    main()
