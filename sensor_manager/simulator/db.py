"""The edge DB of one sensor: its schema, and the read-only access every other component uses.

Physical layout (schema version 2), normalised so a row costs well under 150 bytes on disk:

- `readings`: one row per reading. `seq` is the INTEGER PRIMARY KEY, so the SQLite row id *is* the
  per-sensor sequence number: strictly increasing, never reused (it continues across restarts and
  across a corrupt-file move-aside), and `max(id)` / `max(seq)` are a single b-tree seek.
  Timestamps are UTC epoch milliseconds, the local offset is minutes east of UTC, the anomaly is a
  small code (0 = none).
- `sensor_identity`: the constant per-sensor columns, one row per identity version.
- `sensor_meta`: one row written at creation (sensor_id, schema_version, created_at, generation).
- `fleet_meta`: the fleet_epoch the DB's rows belong to (a reset deletes the DB, so it never changes).
  It keeps the epoch with the data: a lost or replaced `state/plan.json` cannot re-label the rows.
  Added beside schema version 1 (`CREATE TABLE IF NOT EXISTS`), so older DBs gain it on their next open.
- `sensor_readings`: a VIEW that reads exactly like the seed simulator's table, plus `seq`, `fault` and
  `duplicate_of`.

Version 2 added `readings.fault` (a small code, NULL = a clean row) and `readings.duplicate_of` (the seq a
re-sent row copies), the delivery-fault labels (`simulator/faults.py`). The writer upgrades a version 1
DB in place on open (`MIGRATE_V1_SQL`: two `ADD COLUMN`s, no row rewritten; old rows read NULL), and
the uploader reads both versions.

Readers open with `open_readonly` (URI `mode=ro`) and never write, index or delete.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from fleetcore.edge_db import confined_db_path, read_fleet_epoch
from sensor_manager.simulator.settings import ANOMALY_TYPES, FAULT_TYPES

SCHEMA_VERSION = 2
BUSY_TIMEOUT_MS = 5_000

READING_COLUMNS = (
    "id", "timestamp", "sensor_id", "temperature", "humidity", "pressure", "vibration", "voltage",
    "status_code", "anomaly_flag", "anomaly_type", "firmware_version", "model", "manufacturer", "location",
    "latitude", "longitude", "original_timezone", "serial_number", "manufacture_date", "deployment_type",
    "installation_date", "height_meters", "orientation_degrees", "instance_id", "sensor_type", "seq",
    "fault", "duplicate_of",
)

IDENTITY_COLUMNS = (
    "sensor_id", "firmware_version", "model", "manufacturer", "location", "latitude", "longitude",
    "serial_number", "manufacture_date", "deployment_type", "installation_date", "height_meters",
    "orientation_degrees", "instance_id", "sensor_type",
)

# Anomaly codes stored in readings.anomaly: 0 = none, then the types in settings order.
ANOMALY_CODES = {name: code for code, name in enumerate(ANOMALY_TYPES, start=1)}

# Fault codes stored in readings.fault: NULL = none, then the types in settings order (append only).
FAULT_CODES = {name: code for code, name in enumerate(FAULT_TYPES, start=1)}

_FAULT_NAME_SQL = "CASE r.fault " + " ".join(f"WHEN {c} THEN '{n}'" for n, c in FAULT_CODES.items()) + " END"
_ANOMALY_NAME_SQL = "CASE r.anomaly " + " ".join(f"WHEN {c} THEN '{n}'" for n, c in ANOMALY_CODES.items()) + " END"
_OFFSET_SQL = (
    "(CASE WHEN r.utc_offset_min < 0 THEN '-' ELSE '+' END"
    " || printf('%02d:%02d', abs(r.utc_offset_min) / 60, abs(r.utc_offset_min) % 60))"
)

_TABLES_SQL = """
CREATE TABLE sensor_meta (
    sensor_id TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    generation TEXT NOT NULL
);
CREATE TABLE sensor_identity (
    identity_id INTEGER PRIMARY KEY,
    sensor_id TEXT NOT NULL,
    firmware_version TEXT NOT NULL,
    model TEXT NOT NULL,
    manufacturer TEXT NOT NULL,
    location TEXT NOT NULL,
    latitude REAL NOT NULL,
    longitude REAL NOT NULL,
    serial_number TEXT NOT NULL,
    manufacture_date TEXT NOT NULL,
    deployment_type TEXT NOT NULL,
    installation_date TEXT NOT NULL,
    height_meters REAL NOT NULL,
    orientation_degrees REAL NOT NULL,
    instance_id TEXT NOT NULL,
    sensor_type TEXT NOT NULL
);
CREATE TABLE readings (
    seq INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    utc_offset_min INTEGER NOT NULL,
    identity_id INTEGER NOT NULL,
    temperature REAL,
    humidity REAL,
    pressure REAL,
    vibration REAL,
    voltage REAL,
    anomaly INTEGER NOT NULL,
    fault INTEGER,
    duplicate_of INTEGER
);
"""

VIEW_SQL = f"""
CREATE VIEW sensor_readings AS
SELECT
    r.seq AS id,
    strftime('%Y-%m-%dT%H:%M:%f', r.ts_ms / 1000.0, 'unixepoch') || '+00:00' AS timestamp,
    s.sensor_id AS sensor_id,
    r.temperature AS temperature,
    r.humidity AS humidity,
    r.pressure AS pressure,
    r.vibration AS vibration,
    r.voltage AS voltage,
    (r.anomaly > 0) AS status_code,
    (r.anomaly > 0) AS anomaly_flag,
    {_ANOMALY_NAME_SQL} AS anomaly_type,
    s.firmware_version AS firmware_version,
    s.model AS model,
    s.manufacturer AS manufacturer,
    s.location AS location,
    s.latitude AS latitude,
    s.longitude AS longitude,
    {_OFFSET_SQL} AS original_timezone,
    s.serial_number AS serial_number,
    s.manufacture_date AS manufacture_date,
    s.deployment_type AS deployment_type,
    s.installation_date AS installation_date,
    s.height_meters AS height_meters,
    s.orientation_degrees AS orientation_degrees,
    s.instance_id AS instance_id,
    s.sensor_type AS sensor_type,
    r.seq AS seq,
    {_FAULT_NAME_SQL} AS fault,
    r.duplicate_of AS duplicate_of
FROM readings AS r CROSS JOIN sensor_identity AS s ON s.identity_id = r.identity_id;
"""

SCHEMA_SQL = _TABLES_SQL + VIEW_SQL

MIGRATE_V1_SQL = f"""
ALTER TABLE readings ADD COLUMN fault INTEGER;
ALTER TABLE readings ADD COLUMN duplicate_of INTEGER;
DROP VIEW sensor_readings;
{VIEW_SQL}
"""

INSERT_READING_SQL = (
    "INSERT INTO readings (seq, ts_ms, utc_offset_min, identity_id, temperature, humidity, pressure,"
    " vibration, voltage, anomaly) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_FAULTY_READING_SQL = (
    "INSERT INTO readings (seq, ts_ms, utc_offset_min, identity_id, temperature, humidity, pressure,"
    " vibration, voltage, anomaly, fault, duplicate_of) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True)
class HighWater:
    """Where a sensor DB ends: its last row id and seq (equal by construction), last timestamp, generation."""

    max_id: int
    max_seq: int
    last_timestamp: str | None
    generation: str | None


def open_readonly(path: str | Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """A connection that cannot write: URI `mode=ro` plus `query_only`, with a busy timeout."""
    uri = f"{confined_db_path(path).as_uri()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout_ms / 1000, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA query_only = 1")
    return conn


def read_high_water(path: str | Path) -> HighWater:
    """High-water mark of a sensor DB from indexed reads only (no COUNT(*))."""
    conn = open_readonly(path)
    try:
        return high_water(conn)
    finally:
        conn.close()


def high_water(conn: sqlite3.Connection) -> HighWater:
    """`HighWater` of an open sensor DB (reader or writer connection)."""
    last = conn.execute(
        "SELECT seq, strftime('%Y-%m-%dT%H:%M:%f', ts_ms / 1000.0, 'unixepoch') || '+00:00'"
        " FROM readings ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    meta = conn.execute("SELECT generation FROM sensor_meta LIMIT 1").fetchone()
    max_seq, last_timestamp = last if last else (0, None)
    return HighWater(max_seq, max_seq, last_timestamp, meta[0] if meta else None)


def last_reading_ms(conn: sqlite3.Connection) -> int | None:
    """Epoch milliseconds of the newest reading, or None for an empty DB."""
    row = conn.execute("SELECT ts_ms FROM readings ORDER BY seq DESC LIMIT 1").fetchone()
    return row[0] if row else None


def highest_fleet_epoch(paths) -> int | None:
    """The highest fleet_epoch recorded by the sensor DBs at `paths` that exist and can be read, or None."""
    epochs = []
    for path in paths:
        if not Path(path).is_file():
            continue
        try:
            conn = open_readonly(path)
            try:
                epochs.append(read_fleet_epoch(conn))
            finally:
                conn.close()
        except sqlite3.Error:
            continue  # a corrupt DB is the simulator's to move aside; it says nothing about the epoch
    return max((e for e in epochs if e is not None), default=None)
