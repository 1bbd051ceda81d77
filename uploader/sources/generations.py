"""The shapes of `sensor_readings` the seed's simulator wrote over time, and how to tell them apart.

| shape   | timestamp                       | differences                                            |
|---------|---------------------------------|--------------------------------------------------------|
| 2025-04 | REAL epoch seconds              | `synced`; no humidity/pressure/latitude/longitude; location may read "City (lat, lon)" |
| 2025-05 | TEXT, naive (no offset)         | `synced`                                               |
| current | TEXT, UTC with `+00:00`         | the 26 seed columns                                    |
| ours    | TEXT, UTC with `+00:00`         | + `seq`, and a `sensor_meta` table with the DB's generation |
| ours v2 | TEXT, UTC with `+00:00`         | + `fault`, `duplicate_of` (delivery-fault labels; the simulator adds them to a v1 DB in place) |

A DB is read by column *names*, so shapes in between (a missing column here, an extra one there) work
too: a missing column reads as null.
"""
from __future__ import annotations

from dataclasses import dataclass

SEED_COLUMNS = (
    "id", "timestamp", "sensor_id", "temperature", "humidity", "pressure", "vibration", "voltage",
    "status_code", "anomaly_flag", "anomaly_type", "firmware_version", "model", "manufacturer", "location",
    "latitude", "longitude", "original_timezone", "serial_number", "manufacture_date", "deployment_type",
    "installation_date", "height_meters", "orientation_degrees", "instance_id", "sensor_type",
)

# DDL of each shape, as the seed wrote it (and as tests and benchmarks build DBs).
DDL = {
    "2025-04": """
        CREATE TABLE sensor_readings (
          id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp REAL NOT NULL, sensor_id TEXT NOT NULL,
          temperature REAL, vibration REAL, voltage REAL, status_code INTEGER, anomaly_flag INTEGER DEFAULT 0,
          anomaly_type TEXT, firmware_version TEXT, model TEXT, manufacturer TEXT, location TEXT,
          synced INTEGER DEFAULT 0)""",
    "2025-05": """
        CREATE TABLE sensor_readings (
          id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp TEXT NOT NULL, sensor_id TEXT NOT NULL,
          temperature REAL, humidity REAL, pressure REAL, vibration REAL, voltage REAL,
          status_code INTEGER, anomaly_flag INTEGER DEFAULT 0, anomaly_type TEXT,
          firmware_version TEXT, model TEXT, manufacturer TEXT, location TEXT,
          synced INTEGER DEFAULT 0);
        CREATE INDEX idx_synced ON sensor_readings(synced);
        CREATE INDEX idx_sensor_id ON sensor_readings(sensor_id)""",
    "current": """
        CREATE TABLE sensor_readings (
          id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp TEXT NOT NULL, sensor_id TEXT NOT NULL,
          temperature REAL, humidity REAL, pressure REAL, vibration REAL, voltage REAL,
          status_code INTEGER, anomaly_flag INTEGER DEFAULT 0, anomaly_type TEXT,
          firmware_version TEXT, model TEXT, manufacturer TEXT, location TEXT,
          latitude REAL, longitude REAL, original_timezone TEXT, serial_number TEXT, manufacture_date TEXT,
          deployment_type TEXT, installation_date TEXT, height_meters REAL, orientation_degrees REAL,
          instance_id TEXT, sensor_type TEXT);
        CREATE INDEX idx_timestamp ON sensor_readings(timestamp);
        CREATE INDEX idx_sensor_id ON sensor_readings(sensor_id)""",
    "ours": """
        CREATE TABLE sensor_readings (
          id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp TEXT NOT NULL, sensor_id TEXT NOT NULL,
          temperature REAL, humidity REAL, pressure REAL, vibration REAL, voltage REAL,
          status_code INTEGER, anomaly_flag INTEGER DEFAULT 0, anomaly_type TEXT,
          firmware_version TEXT, model TEXT, manufacturer TEXT, location TEXT,
          latitude REAL, longitude REAL, original_timezone TEXT, serial_number TEXT, manufacture_date TEXT,
          deployment_type TEXT, installation_date TEXT, height_meters REAL, orientation_degrees REAL,
          instance_id TEXT, sensor_type TEXT, seq INTEGER NOT NULL);
        CREATE TABLE sensor_meta (sensor_id TEXT, schema_version INTEGER, created_at TEXT, generation TEXT)""",
}


@dataclass(frozen=True)
class Shape:
    """What a DB's `sensor_readings` offers: its column names and whether the timestamp is a REAL epoch."""

    columns: frozenset[str]
    has_meta: bool

    @property
    def name(self) -> str:
        if "seq" in self.columns or self.has_meta:
            return "ours"
        if "humidity" not in self.columns:
            return "2025-04"
        if "synced" in self.columns:
            return "2025-05"
        return "current"

    def has(self, column: str) -> bool:
        return column in self.columns
