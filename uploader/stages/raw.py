"""The `raw` stage: every reading as read, made canonical (types, UTC timestamp, city, lineage), nothing more.

A row that cannot be made canonical (unparseable or implausible timestamp, a non-numeric metric, no
sensor_id or seq) is rejected with its reason: never zero-filled, never dropped silently.
"""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fleetcore.naming import safe_city_name
from uploader.batch import Lineage, Rejection
from uploader.schema import ADDED_COLUMNS, CANONICAL_SCHEMA, METRICS

# Plausible reading times: a julianday() of a bare number or a typo lands far outside.
EARLIEST_US = int(datetime(1990, 1, 1, tzinfo=timezone.utc).timestamp() * 1_000_000)
LATEST_US = int(datetime(2200, 1, 1, tzinfo=timezone.utc).timestamp() * 1_000_000)
# The 2025-04 generation wrote "City (lat, lon)" into location.
COORDINATES = r"^(?P<name>.*?)\s*\(\s*(?P<lat>[-+]?\d+(?:\.\d+)?)\s*,\s*(?P<lon>[-+]?\d+(?:\.\d+)?)\s*\)\s*$"


def _constant(value: object, type_: pa.DataType, rows: int) -> pa.Array:
    return pa.array([value], type_).take(np.zeros(rows, dtype=np.int32))


def _rejections(chunk: pa.RecordBatch, bad: pa.Array) -> list[Rejection]:
    rejections = []
    for index in np.flatnonzero(bad.to_numpy(zero_copy_only=False)):
        row = {name: chunk.column(name)[int(index)].as_py() for name in ("source_id", "ts_us", "sensor_id", "seq", "bad_metrics")}
        reasons = []
        if row["ts_us"] is None:
            reasons.append("unparseable timestamp")
        elif not EARLIEST_US <= row["ts_us"] < LATEST_US:
            reasons.append("implausible timestamp (before 1990 or after 2200)")
        reasons += [f"non-numeric {metric}" for bit, metric in enumerate(METRICS) if (row["bad_metrics"] or 0) >> bit & 1]
        if not row["sensor_id"]:
            reasons.append("missing sensor_id")
        if row["seq"] is None:
            reasons.append("missing or non-integer seq")
        rejections.append(Rejection(int(row["source_id"]), "; ".join(reasons)))
    return rejections


def _bad_rows(chunk: pa.RecordBatch) -> pa.Array:
    ts = chunk.column("ts_us")
    sensor_id = chunk.column("sensor_id")
    checks = [
        pc.is_null(ts),
        pc.fill_null(pc.less(ts, EARLIEST_US), False),
        pc.fill_null(pc.greater_equal(ts, LATEST_US), False),
        pc.not_equal(chunk.column("bad_metrics"), 0),
        pc.is_null(sensor_id),
        pc.fill_null(pc.equal(sensor_id, ""), False),
        pc.is_null(chunk.column("seq")),
    ]
    bad = checks[0]
    for check in checks[1:]:
        bad = pc.or_(bad, check)
    return bad


def _locations(chunk: pa.RecordBatch) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Location without embedded coordinates, and latitude/longitude filled from them where missing."""
    location = chunk.column("location")
    latitude, longitude = chunk.column("latitude"), chunk.column("longitude")
    matched = pc.fill_null(pc.match_substring_regex(location, COORDINATES), False)
    if not pc.any(matched).as_py():
        return location, latitude, longitude
    parts = pc.extract_regex(location, COORDINATES)
    name = pc.struct_field(parts, "name")
    lat = pc.cast(pc.struct_field(parts, "lat"), pa.float64())
    lon = pc.cast(pc.struct_field(parts, "lon"), pa.float64())
    return (pc.if_else(matched, name, location),
            pc.coalesce(latitude, pc.if_else(matched, lat, None)),
            pc.coalesce(longitude, pc.if_else(matched, lon, None)))


def _cities(location: pa.Array, fallback: str) -> pa.Array:
    """The display name in each row's location (checked once per distinct value), else the directory's safe name."""
    encoded = pc.dictionary_encode(location)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    names = [_display_name(value) or fallback for value in encoded.dictionary.to_pylist()]
    indices = pc.fill_null(encoded.indices, len(names))
    return pa.array(names + [fallback], pa.string()).take(indices)


def _display_name(location: str | None) -> str | None:
    # A location with nothing to build a safe name from ("", "!!!") does not name a city.
    name = (location or "").strip()
    return name if safe_city_name(name) else None


class RawStage:
    name = "raw"
    schema = CANONICAL_SCHEMA

    def apply(self, chunk: pa.RecordBatch, lineage: Lineage) -> tuple[pa.RecordBatch | None, list[Rejection]]:
        """Canonical rows kept, plus the rejected rows with their reasons."""
        rejected: list[Rejection] = []
        bad = _bad_rows(chunk)
        if pc.any(bad).as_py():
            rejected = _rejections(chunk, bad)
            chunk = chunk.filter(pc.invert(bad))
        if chunk.num_rows == 0:
            return None, rejected
        return self._canonical(chunk, lineage), rejected

    def _canonical(self, chunk: pa.RecordBatch, lineage: Lineage) -> pa.RecordBatch:
        rows = chunk.num_rows
        timestamp = pc.cast(chunk.column("ts_us"), pa.timestamp("us", tz="UTC"))
        location, latitude, longitude = _locations(chunk)
        columns = {
            "timestamp": timestamp,
            "location": location,
            "latitude": latitude,
            "longitude": longitude,
            "status_code": pc.cast(chunk.column("status_code"), pa.int32(), safe=False),
            "anomaly_flag": pc.cast(chunk.column("anomaly_flag"), pa.bool_()),
            "city": _cities(location, lineage.city_fallback),
            "date": pc.cast(timestamp, pa.date32()),
            "project": _constant(lineage.project, pa.string(), rows),
            "fleet_epoch": _constant(lineage.fleet_epoch, pa.int64(), rows),
            "source": _constant(lineage.source, pa.string(), rows),
            "generation": _constant(lineage.generation, pa.string(), rows),
            "source_id": chunk.column("source_id"),
            "uploader_id": _constant(lineage.uploader_id, pa.string(), rows),
            "stage": _constant(self.name, pa.string(), rows),
        }
        for name in ADDED_COLUMNS:  # rows built without the fault labels (every sqlite read has them) are clean
            if name not in chunk.schema.names:
                columns[name] = pa.nulls(rows, CANONICAL_SCHEMA.field(name).type)
        arrays = [columns[f.name] if f.name in columns else chunk.column(f.name) for f in CANONICAL_SCHEMA]
        arrays = [a if a.type == f.type else pc.cast(a, f.type) for a, f in zip(arrays, CANONICAL_SCHEMA, strict=True)]
        return pa.RecordBatch.from_arrays(arrays, schema=CANONICAL_SCHEMA)
