#!/usr/bin/env python3
"""One monitor refresh over a 1,000-sensor project, against the seed's way of looking (target: under 0.5 s).

The project is built in a temp directory: a plan, one edge DB per sensor in the simulator's own schema
(`--rows` readings each), a fresh simulator status file per city, an uploader status file and a lake
holding part of each city. value = median seconds of `Monitor.refresh()` after the first one, as in
the live dashboard (the first refresh, which opens every DB, is printed too); baseline = the seed's snapshot in the same run: open each DB read-write
and `SELECT COUNT(*)` its readings. Prints value/baseline/ratio, or with --json one object
{"name", "value", "baseline", "ratio", "unit"}.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake

from fleetcore.naming import city_service_slug
from fleetcore.statusfiles import write_status
from sensor_manager.layout import ProjectLayout
from sensor_manager.observe.monitor import Monitor
from sensor_manager.plan import FleetPlan, PlannedSensor
from sensor_manager.simulator import db as edge_schema
from timing import median_seconds

START_MS = 1_748_779_200_000  # 2025-06-01T12:00:00Z


def planned(city: str, index: int) -> PlannedSensor:
    code = f"{city[-2:].upper()}{index:03d}"
    return PlannedSensor(
        sensor_id=f"{city}_{code}", city=city, safe_city=city, code=code, index=index, latitude=0.0, longitude=0.0,
        timezone="UTC", db_path=f"data/{city}/{code}/sensor_data.db", manufacturer="SensorTech", model="EnvMonitor-3000",
        firmware_version="1.4.0", serial_number=f"SN-{code}", manufacture_date="2024-01-01", installation_date="2024-02-01",
        deployment_type="rooftop", height_meters=2.0, orientation_degrees=0.0, instance_id=f"i-{code}",
        sensor_type="environmental_monitoring", seed=index,
    )


def write_db(root: Path, sensor: PlannedSensor, rows: int) -> str:
    path = root / sensor.db_path
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(edge_schema.SCHEMA_SQL)
    generation = str(uuid.uuid4())
    conn.execute("INSERT INTO sensor_meta VALUES (?, 1, '2025-06-01T00:00:00+00:00', ?)", (sensor.sensor_id, generation))
    conn.execute(f"INSERT INTO sensor_identity VALUES (1{', ?' * len(edge_schema.IDENTITY_COLUMNS)})",
                 [getattr(sensor, "city" if c == "location" else c) for c in edge_schema.IDENTITY_COLUMNS])
    conn.executemany(edge_schema.INSERT_READING_SQL,
                     ((seq, START_MS + seq * 1000, 0, 1, 65.0, 55.0, 1013.0, 2.5, 12.0, 0) for seq in range(1, rows + 1)))
    conn.commit()
    conn.close()
    return generation


def build_project(root: Path, cities: int, per_city: int, rows: int) -> FleetPlan:
    layout = ProjectLayout.at(root)
    names = [f"City{c:02d}" for c in range(cities)]
    sensors = tuple(planned(city, i) for city in names for i in range(per_city))
    plan = FleetPlan("bench", 1, 1, sensors, tuple(names))
    layout.ensure_state()
    layout.plan_file.write_text(json.dumps(plan.to_dict()))
    for city in names:
        group = [s for s in sensors if s.safe_city == city]
        generations = {s.sensor_id: write_db(root, s, rows) for s in group}
        slug = city_service_slug(city)
        write_status(layout.status_file("sensor", slug), {"role": "sensor", "name": f"sensor-{slug}", "sensors": {
            s.sensor_id: {"db_path": s.db_path, "rows_written": rows, "seq": rows, "readings_per_second": 1.0, "errors": 0,
                          "active_anomaly": None} for s in group}}, 3600)
        shipped = rows // 2
        write_status(layout.status_file("uploader", slug), {"role": "uploader", "name": f"uploader-{slug}", "uploader_id": slug,
                     "state": "idle", "sinks": {"delta": {"last_success": "2025-06-01T12:00:00+00:00", "retries": 0, "dead_lettered": 0}},
                     "sources": [{"source": f"{city}/{s.code}/sensor_data.db", "generation": generations[s.sensor_id],
                                  "sensor_id": s.sensor_id, "positions": {"delta": shipped}} for s in group]}, 3600)
        write_deltalake(str(layout.lake / "sensor_readings"), pa.table({
            "sensor_id": [s.sensor_id for s in group for _ in range(shipped)], "city": [city] * (len(group) * shipped),
            "date": ["2025-06-01"] * (len(group) * shipped)}), mode="append", partition_by=["city", "date"])
    return plan


def seed_snapshot(root: Path, plan: FleetPlan) -> None:
    """What the seed's monitor did per DB: a plain read-write connect and a full COUNT(*)."""
    for sensor in plan.sensors:
        conn = sqlite3.connect(root / sensor.db_path)
        conn.execute("SELECT COUNT(*) FROM sensor_readings").fetchone()
        conn.execute("SELECT DISTINCT sensor_id FROM sensor_readings LIMIT 1").fetchone()
        conn.close()



def project_arguments(description: str) -> argparse.Namespace:
    """The flags of the benchmarks that measure a `build_project` fleet (this one and dashboard_snapshot)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--cities", type=int, default=20)
    parser.add_argument("--sensors-per-city", type=int, default=50)
    parser.add_argument("--rows", type=int, default=2000, help="readings per sensor DB")
    parser.add_argument("--runs", type=int, default=5)
    return parser.parse_args()


def main() -> None:
    args = project_arguments(__doc__.splitlines()[0])
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
        root = Path(tmp)
        plan = build_project(root, args.cities, args.sensors_per_city, args.rows)
        started = time.perf_counter()
        watch = Monitor(ProjectLayout.at(root), plan)
        watch.refresh()  # `monitor --once` pays this: every DB opened once
        cold = time.perf_counter() - started
        value = median_seconds(watch.refresh, args.runs)
        watch.close()
        baseline = median_seconds(lambda: seed_snapshot(root, plan), args.runs)
    sensors = args.cities * args.sensors_per_city
    result = {"name": f"monitor_refresh_{sensors}_sensors", "value": round(value, 4), "baseline": round(baseline, 4),
              "ratio": round(value / baseline, 3), "unit": "s"}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['name']}: {value:.3f} s per refresh (baseline seed COUNT(*) snapshot: {baseline:.3f} s, "
              f"ratio {result['ratio']}x; target < 0.5 s); first refresh, opening every DB: {cold:.3f} s")


if __name__ == "__main__":
    main()
