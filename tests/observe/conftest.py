"""A small fleet written by hand: plan, edge DBs with the simulator's schema, status files and a Delta lake.

The numbers are chosen so tests can compute every expectation by hand: sensor k of a city writes rows
with ids and seq 1..n, one second apart, ending at `END`; every 5th row is a spike anomaly.
"""
from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from fleetcore.naming import city_service_slug, safe_city_name
from fleetcore.statusfiles import write_status
from sensor_manager.layout import ProjectLayout
from sensor_manager.plan import FleetPlan, PlannedSensor
from sensor_manager.simulator import db as edge_schema

END = datetime(2025, 6, 1, 12, 0, 0, tzinfo=timezone.utc)

def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def temperature(k: int, i: int) -> float:
    return 60.0 + k + (i % 10) / 10


def planned(city: str, index: int) -> PlannedSensor:
    safe = safe_city_name(city)
    code = f"{city_service_slug(safe)[:2].upper()}{index:02d}"
    return PlannedSensor(
        sensor_id=f"{safe}_{code}", city=city, safe_city=safe, code=code, index=index, latitude=52.0,
        longitude=4.0, timezone="UTC", db_path=f"data/{safe}/{code}/sensor_data.db", manufacturer="SensorTech",
        model="EnvMonitor-3000", firmware_version="1.4.0", serial_number=f"SN-{code}", manufacture_date="2024-01-01",
        installation_date="2024-02-01", deployment_type="outdoor", height_meters=2.0, orientation_degrees=90.0,
        instance_id=f"i-{code}", sensor_type="environmental", seed=index,
    )


@dataclass
class Fleet:
    layout: ProjectLayout
    plan: FleetPlan
    rows: dict[str, int] = field(default_factory=dict)  # sensor_id -> rows written
    uploaded: dict[str, int] = field(default_factory=dict)  # sensor_id -> last id in the lake

    @property
    def root(self) -> Path:
        return self.layout.root

    def db(self, sensor_id: str) -> Path:
        return self.layout.root / self.plan.sensor(sensor_id).db_path

    def city_sensors(self, safe_city: str) -> list[PlannedSensor]:
        return self.plan.by_city()[safe_city]

    def write_rows(self, sensor: PlannedSensor, count: int) -> None:
        """Append `count` rows (seq continues) to the sensor's DB, created with the simulator's own schema."""
        path = self.db(sensor.sensor_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path)
        if not conn.execute("SELECT name FROM sqlite_master WHERE name = 'readings'").fetchone():
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(edge_schema.SCHEMA_SQL)
            conn.execute("INSERT INTO sensor_meta VALUES (?, ?, ?, ?)", (sensor.sensor_id, edge_schema.SCHEMA_VERSION, iso(END), str(uuid.uuid4())))
            conn.execute(
                f"INSERT INTO sensor_identity VALUES (1{', ?' * len(edge_schema.IDENTITY_COLUMNS)})",
                [getattr(sensor, "city" if name == "location" else name) for name in edge_schema.IDENTITY_COLUMNS],
            )
        start = self.rows.get(sensor.sensor_id, 0)
        total = start + count
        rows = []
        for seq in range(start + 1, total + 1):
            moment = END - timedelta(seconds=total - seq)
            anomaly = edge_schema.ANOMALY_CODES["spike"] if seq % 5 == 0 else 0
            rows.append((seq, int(moment.timestamp() * 1000), 0, 1, temperature(sensor.index, seq), 50.0, 1013.0, 2.5, 12.0, anomaly))
        conn.executemany(edge_schema.INSERT_READING_SQL, rows)
        conn.commit()
        conn.close()
        self.rows[sensor.sensor_id] = total

    def write_sensor_status(self, safe_city: str, rate: float = 1.0, interval: float = 2.0, active_anomaly: str | None = None) -> None:
        sensors = {
            s.sensor_id: {
                "db_path": s.db_path, "rows_written": self.rows.get(s.sensor_id, 0), "seq": self.rows.get(s.sensor_id, 0),
                "last_timestamp": iso(END), "readings_per_second": rate, "errors": 0, "skipped_readings": 0,
                "active_anomaly": active_anomaly,
            }
            for s in self.city_sensors(safe_city)
        }
        name = f"sensor-{city_service_slug(safe_city)}"
        write_status(self.layout.status_file("sensor", city_service_slug(safe_city)), {"role": "sensor", "name": name, "sensors": sensors}, interval)

    def upload(self, safe_city: str, upto: dict[str, int] | None = None, state: str = "idle", interval: float = 2.0, dead_lettered: int = 0,
               lake_city: str | None = None) -> None:
        """Put rows 1..upto[sensor] (default: all) of a city into the lake and write the uploader's status file.

        `lake_city` is the `city` value written: the display name by default, as the uploader writes it; the safe
        name imitates a lake written before display names.
        """
        upto = upto or {}
        columns: dict[str, list] = {name: [] for name in LAKE_COLUMNS}
        sources = []
        for sensor in self.city_sensors(safe_city):
            path = self.db(sensor.sensor_id)
            last = upto.get(sensor.sensor_id, self.rows.get(sensor.sensor_id, 0))
            conn = sqlite3.connect(path)
            conn.row_factory = sqlite3.Row
            generation = conn.execute("SELECT generation FROM sensor_meta").fetchone()[0]
            done = self.uploaded.get(sensor.sensor_id, 0)
            for row in conn.execute("SELECT * FROM sensor_readings WHERE id > ? AND id <= ? ORDER BY id", (done, last)):
                moment = datetime.fromisoformat(row["timestamp"])
                for name in LAKE_COLUMNS:
                    columns[name].append({
                        "timestamp": moment, "city": lake_city or sensor.city, "date": moment.date().isoformat(), "project": self.plan.project,
                        "fleet_epoch": self.plan.fleet_epoch, "source": f"{safe_city}/{sensor.code}/sensor_data.db",
                        "generation": generation, "source_id": row["id"], "uploader_id": city_service_slug(safe_city), "stage": "raw",
                    }.get(name, row[name] if name in row.keys() else None))
            conn.close()
            self.uploaded[sensor.sensor_id] = max(done, last)
            sources.append({"source": f"{safe_city}/{sensor.code}/sensor_data.db", "generation": generation, "sensor_id": sensor.sensor_id,
                            "end_id": self.rows.get(sensor.sensor_id, 0), "positions": {"delta": self.uploaded[sensor.sensor_id]}, "locked": True})
        if columns["timestamp"]:
            write_deltalake(str(self.layout.lake / "sensor_readings"), pa.table(columns, schema=LAKE_SCHEMA), mode="append", partition_by=["city", "date"])
        slug = city_service_slug(safe_city)
        sink = {"rows_shipped": sum(self.uploaded.get(s.sensor_id, 0) for s in self.city_sensors(safe_city)), "lag_rows": 0, "lag_seconds": 0,
                "last_success": iso(datetime.now(timezone.utc)), "last_error": None, "retries": 0, "dead_lettered": dead_lettered,
                "failing_permanently": False}
        write_status(self.layout.status_file("uploader", slug), {"role": "uploader", "name": f"uploader-{slug}", "uploader_id": slug,
                     "state": state, "sinks": {"delta": sink}, "sources": sources}, interval)

    def age_status_files(self, seconds: float = 3600) -> None:
        """Make every status file look as if its writer stopped `seconds` ago (a stopped project)."""
        for path in self.layout.status_dir.glob("*.json"):
            document = json.loads(path.read_text())
            document["updated_at_epoch"] = time.time() - seconds
            path.write_text(json.dumps(document))


LAKE_SCHEMA = pa.schema([
    ("timestamp", pa.timestamp("us", tz="UTC")), ("sensor_id", pa.string()), ("temperature", pa.float64()),
    ("humidity", pa.float64()), ("pressure", pa.float64()), ("vibration", pa.float64()), ("voltage", pa.float64()),
    ("anomaly_flag", pa.int64()), ("anomaly_type", pa.string()), ("status_code", pa.int64()), ("location", pa.string()),
    ("city", pa.string()), ("date", pa.string()), ("project", pa.string()), ("fleet_epoch", pa.int64()),
    ("source", pa.string()), ("generation", pa.string()), ("source_id", pa.int64()), ("seq", pa.int64()),
    ("uploader_id", pa.string()), ("stage", pa.string()),
])
LAKE_COLUMNS = LAKE_SCHEMA.names


def build_fleet(root: Path, cities: dict[str, int], rows: int) -> Fleet:
    layout = ProjectLayout.at(root)
    sensors = tuple(planned(city, i) for city, count in cities.items() for i in range(count))
    plan = FleetPlan("obs-test", 7, 1, sensors, tuple(dict.fromkeys(s.safe_city for s in sensors)))
    layout.ensure_state()
    layout.plan_file.write_text(json.dumps(plan.to_dict()))
    fleet = Fleet(layout, plan)
    for sensor in sensors:
        fleet.write_rows(sensor, rows)
    return fleet


@pytest.fixture
def fleet(project_dir: Path) -> Fleet:
    """Two cities (Amsterdam: 2 sensors, São Paulo: 1), 20 rows each; nothing uploaded; no status files."""
    return build_fleet(project_dir, {"Amsterdam": 2, "São Paulo": 1}, rows=20)
