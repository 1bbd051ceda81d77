"""Read-only access to the lake's `sensor_readings` Delta table, shared by `monitor` and `query`.

Per-city row counts and last writes come from the Delta log (each data file's `num_records` and
modification time, by `city` partition), so the monitor never scans data files. SQL runs in an
in-memory DuckDB connection that sees the table as an Arrow dataset over the files the Delta log lists,
read by arrow's own filesystem (`uploader.lakeread`: deltalake's Python filesystem crashes the process
at exit after an early-stopped scan); DuckDB never installs or loads an extension, and the connection
is locked so the SQL cannot touch files.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import DeltaTable

from fleetcore.naming import safe_city_name
from sensor_manager.layout import ProjectLayout
from uploader import lakeread

TABLE = "sensor_readings"

# Settings fixed when the connection opens; `lock_configuration` then forbids changing any of them.
LOCKED_DUCKDB_CONFIG = {
    "enable_external_access": False,  # no COPY TO, ATTACH, file readers, INSTALL or LOAD
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "python_enable_replacements": False,  # SQL cannot reach Python variables by name
    "threads": 2,
}


@dataclass(frozen=True)
class CityLakeStats:
    rows: int
    last_write_epoch: float | None  # newest data file of the city, seconds


def table_path(layout: ProjectLayout) -> Path:
    """Where the uploaders write: `uploader.sinks.delta.path` when the layout carries it, else `lake/sensor_readings`."""
    return layout.lake_table


def with_configured_lake(layout: ProjectLayout, config) -> ProjectLayout:
    """The layout whose lake table is the one the config's uploaders write (`uploader.sinks.delta.path`)."""
    return layout.with_delta_path(config.uploader.sinks.delta.path) if config is not None else layout


def open_table(layout: ProjectLayout) -> DeltaTable | None:
    """The lake table, or None when nothing has been uploaded yet; a damaged log raises `LakeUnreadableError`."""
    return lakeread.open_table(table_path(layout))


def refresh(table: DeltaTable) -> None:
    """Move an open table to its newest version (the monitor keeps one open between refreshes)."""
    with lakeread.reading(lakeread.local_path(table)):
        table.update_incremental()


def city_stats(table: DeltaTable | None) -> dict[str, CityLakeStats]:
    """Rows and newest write per city, by safe name, from the Delta log alone.

    Keyed by safe name so a lake's older `New_York` partitions and newer `New York` ones add up.
    """
    if table is None:
        return {}
    with lakeread.reading(lakeread.local_path(table)):
        actions = pa.table(table.get_add_actions(flatten=True)).to_pydict()
    totals: dict[str, list] = {}
    for city, records, modified in zip(
        actions.get("partition.city", []), actions.get("num_records", []), actions.get("modification_time", []),
        strict=False,  # a column the log lacks (no partitions yet) reads as no files, not an error
    ):
        entry = totals.setdefault(safe_city_name(city), [0, None])
        entry[0] += records or 0
        if modified is not None:
            entry[1] = max(entry[1] or 0, _epoch_seconds(modified))
    return {city: CityLakeStats(rows, last) for city, (rows, last) in totals.items()}


def _epoch_seconds(value) -> float:
    # deltalake reports modification_time as epoch milliseconds (an int or a timestamp).
    if hasattr(value, "timestamp"):
        return value.timestamp()
    return float(value) / 1000.0


def dataset(table: DeltaTable):
    """The table's current version as a pyarrow dataset (files listed by the Delta log, read lazily)."""
    return lakeread.open_dataset(table)


def locked_connection(readings: ds.Dataset | None) -> duckdb.DuckDBPyConnection:
    """In-memory DuckDB with `sensor_readings` registered from an arrow dataset (the lake's, the archive's, a
    bucket's) and every way out to files or extensions closed."""
    conn = duckdb.connect(":memory:", config=dict(LOCKED_DUCKDB_CONFIG))
    if readings is not None:
        conn.register(TABLE, readings)
    else:
        conn.execute(f"CREATE VIEW {TABLE} AS SELECT * FROM (SELECT 1) WHERE false")
    conn.execute("SET lock_configuration = true")
    return conn
