"""The canonical record: one Arrow schema for every reading in the lake, whatever DB generation it came from.

Key: (sensor_id, fleet_epoch, seq). Partitions: city (the display name, e.g. New York; Delta escapes it in
paths; lakes written before hold the safe name New_York) and date (UTC).
Lineage columns say where a row came from: project, fleet_epoch, source (DB path relative to the data
root), generation, source_id (the SQLite row id), seq, uploader_id and stage. Later stages add rules to
the same columns, never a second schema.
Delivery-fault labels (`fault`: duplicate | out_of_order | offline_burst | clock_skew, null for a clean
row; `duplicate_of`: the seq a re-sent row copies) come last: they are `ADDED_COLUMNS`, which tables
and files written before them lack (null on read; the Delta sink adds them on its next write).
"""
from __future__ import annotations

import pyarrow as pa

METRICS = ("temperature", "humidity", "pressure", "vibration", "voltage")

# Reading columns as the sensor DBs name them, grouped by canonical type.
TEXT_COLUMNS = (
    "sensor_id", "anomaly_type", "firmware_version", "model", "manufacturer", "serial_number",
    "manufacture_date", "installation_date", "deployment_type", "instance_id", "sensor_type",
    "location", "original_timezone", "fault",
)
FLOAT_COLUMNS = METRICS + ("height_meters", "orientation_degrees", "latitude", "longitude")
INT_COLUMNS = ("status_code", "duplicate_of")
BOOL_COLUMNS = ("anomaly_flag",)

PARTITION_COLUMNS = ["city", "date"]

CANONICAL_SCHEMA = pa.schema([
    pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("sensor_id", pa.string(), nullable=False),
    *(pa.field(name, pa.float64()) for name in METRICS),
    pa.field("status_code", pa.int32()),
    pa.field("anomaly_flag", pa.bool_()),
    pa.field("anomaly_type", pa.string()),
    pa.field("firmware_version", pa.string()),
    pa.field("model", pa.string()),
    pa.field("manufacturer", pa.string()),
    pa.field("serial_number", pa.string()),
    pa.field("manufacture_date", pa.string()),
    pa.field("installation_date", pa.string()),
    pa.field("deployment_type", pa.string()),
    pa.field("instance_id", pa.string()),
    pa.field("sensor_type", pa.string()),
    pa.field("height_meters", pa.float64()),
    pa.field("orientation_degrees", pa.float64()),
    pa.field("location", pa.string()),
    pa.field("latitude", pa.float64()),
    pa.field("longitude", pa.float64()),
    pa.field("original_timezone", pa.string()),
    pa.field("city", pa.string(), nullable=False),
    pa.field("date", pa.date32(), nullable=False),
    pa.field("project", pa.string(), nullable=False),
    pa.field("fleet_epoch", pa.int64(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("generation", pa.string(), nullable=False),
    pa.field("source_id", pa.int64(), nullable=False),
    pa.field("seq", pa.int64(), nullable=False),
    pa.field("uploader_id", pa.string(), nullable=False),
    pa.field("stage", pa.string(), nullable=False),
    pa.field("fault", pa.string()),
    pa.field("duplicate_of", pa.int64()),
])
ADDED_COLUMNS = ("fault", "duplicate_of")


def with_added_columns(table: pa.Table) -> pa.Table:
    """A table read from a file written before `ADDED_COLUMNS`, in the canonical schema (those columns null)."""
    for name in ADDED_COLUMNS:
        if name not in table.column_names:
            field = CANONICAL_SCHEMA.field(name)
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    return table.select(CANONICAL_SCHEMA.names)

# The aggregated stage's record: one row per sensor and tumbling window, in `sensor_readings_<window>`.
# Key: (sensor_id, fleet_epoch, window_start). Each metric has count (non-null values), min, max and mean.
AGGREGATE_SCHEMA = pa.schema([
    pa.field("window_start", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("window_end", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("sensor_id", pa.string(), nullable=False),
    pa.field("rows", pa.int64(), nullable=False),
    pa.field("anomaly_count", pa.int64(), nullable=False),
    *(pa.field(f"{metric}_{measure}", pa.int64() if measure == "count" else pa.float64())
      for metric in METRICS for measure in ("count", "min", "max", "mean")),
    pa.field("first_seq", pa.int64(), nullable=False),
    pa.field("last_seq", pa.int64(), nullable=False),
    pa.field("window", pa.string(), nullable=False),
    pa.field("city", pa.string(), nullable=False),
    pa.field("date", pa.date32(), nullable=False),
    pa.field("project", pa.string(), nullable=False),
    pa.field("fleet_epoch", pa.int64(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("generation", pa.string(), nullable=False),
    pa.field("uploader_id", pa.string(), nullable=False),
    pa.field("stage", pa.string(), nullable=False),
])

# What a rejected row looks like in the dead-letter store: where it came from, why, and the row as text.
DEADLETTER_SCHEMA = pa.schema([
    pa.field("source", pa.string()),
    pa.field("generation", pa.string()),
    pa.field("source_id", pa.int64()),
    pa.field("reason", pa.string()),
    pa.field("row_json", pa.string()),
    pa.field("rejected_at", pa.timestamp("us", tz="UTC")),
    pa.field("stage", pa.string()),
    pa.field("sink", pa.string()),
])
