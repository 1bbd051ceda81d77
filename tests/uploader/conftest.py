"""Uploader test fixtures: sensor DBs of every schema generation, built in tmp_path, and lake readers."""
from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from uploader.invocation import resolve_invocation
from uploader.settings import UploaderSettings
from uploader.sources.generations import DDL

T0 = datetime(2025, 6, 1, 12, 0, 0, tzinfo=timezone.utc)


class SensorDB:
    """A sensor DB in one of the seed's shapes; `append` writes rows the way that generation did."""

    def __init__(self, path: Path, shape: str = "ours", sensor_id: str = "New_York_AB12", location: str = "New York",
                 journal: str = "wal", generation: str | None = None):
        self.path, self.shape, self.sensor_id, self.location = path, shape, sensor_id, location
        self.generation = generation or str(uuid.uuid4())
        self.seq = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self.connect()) as con, con:
            con.execute(f"PRAGMA journal_mode = {journal}")
            con.executescript(DDL[shape])
            if shape == "ours":
                con.execute("INSERT INTO sensor_meta VALUES (?, 1, ?, ?)", (sensor_id, T0.isoformat(), self.generation))

    def connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def row(self, index: int) -> dict:
        when = T0 + timedelta(seconds=index)
        base = {"sensor_id": self.sensor_id, "temperature": 20.0 + index % 7, "vibration": 0.1, "voltage": 12.0,
                "status_code": 0, "anomaly_flag": 0, "anomaly_type": None, "firmware_version": "1.4.0",
                "model": "EnvMonitor-3000", "manufacturer": "SensorTech"}
        if self.shape == "2025-04":
            return {**base, "timestamp": when.timestamp(), "location": f"{self.location} (40.7128, -74.006)", "synced": 0}
        if self.shape == "2025-05":
            return {**base, "timestamp": when.replace(tzinfo=None).isoformat(timespec="milliseconds"),
                    "humidity": 50.0, "pressure": 1013.0, "location": self.location, "synced": 0}
        row = {**base, "timestamp": when.isoformat(timespec="milliseconds"), "humidity": 50.0, "pressure": 1013.0,
               "location": self.location, "latitude": 40.7128, "longitude": -74.006, "original_timezone": "-04:00",
               "serial_number": "SN-1", "deployment_type": "fixed", "installation_date": "2024-01-01", "height_meters": 2.5}
        if self.shape == "ours":
            row["seq"] = self.seq + 1
        return row

    def append(self, count: int, **overrides) -> None:
        """Append `count` rows (one transaction); `overrides` replace column values in every row."""
        rows = []
        for _ in range(count):
            row = {**self.row(self.seq), **overrides}
            if self.shape == "ours":
                row["seq"] = self.seq + 1
            self.seq += 1
            rows.append(row)
        if not rows:
            return
        names = list(rows[0])
        with closing(self.connect()) as con, con:
            con.executemany(f"INSERT INTO sensor_readings ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                            [tuple(r[n] for n in names) for r in rows])

    def count(self) -> int:
        with closing(self.connect()) as con:
            return con.execute("SELECT count(*) FROM sensor_readings").fetchone()[0]


@pytest.fixture
def sensor_db():
    """`sensor_db(path, shape="ours", ...)` → SensorDB."""
    return SensorDB


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory with data/ and state/plan.json (project "test", epoch 1)."""
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    (root / "state").mkdir()
    (root / "state" / "plan.json").write_text('{"schema_version": 1, "project": "test", "seed": 1, "fleet_epoch": 1, "sensors": []}')
    return root


@pytest.fixture
def invocation(project: Path):
    """`invocation(sqlite=None, **overrides)`: a resolved run over the project's data/."""
    def make(sqlite: Path | None = None, settings: UploaderSettings | None = None, **options):
        return resolve_invocation(sqlite=sqlite or project / "data", settings=settings or UploaderSettings(),
                                  project_dir=project, **options)
    return make


def read_lake(table_uri: str | Path) -> pa.Table:
    return DeltaTable(str(table_uri)).to_pyarrow_table()


@pytest.fixture
def lake_rows():
    """`lake_rows(table_uri)` → the table's rows as a pyarrow Table."""
    return read_lake
