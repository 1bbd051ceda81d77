"""`query --source lake|archive|s3`: DuckDB over an arrow dataset, one class whatever holds the files.

Each source only says how to open its current files as a `pyarrow.dataset` (`Snapshot`): the lake's
Delta table, the Parquet archive's part files, the S3 sink's Delta table or Parquet objects. Every file
is read by arrow's own filesystems (local or `pyarrow.fs.S3FileSystem`), never deltalake's Python one
(`uploader/lakeread.py` says why). The SQL (filters as bound parameters) and `--sql` run in the locked
DuckDB connection of `observe/lake.py` with `sensor_readings` registered from that dataset.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import duckdb
import pyarrow.dataset as ds
import pyarrow.fs as pa_fs

from fleetcore.errors import SensorManagerError, UsageError
from fleetcore.naming import safe_city_name
from sensor_manager.layout import ProjectLayout
from sensor_manager.observe import lake
from sensor_manager.observe.readings import READING_COLUMNS, DatabaseReport, Filters, QueryResult, spells_city
from sensor_manager.plan import FleetPlan


class QueryTimeoutError(SensorManagerError):
    """A `--sql` query outlived its `--timeout`."""


@dataclass(frozen=True)
class Snapshot:
    """A source's current files as one arrow dataset, and how `--all` names it."""

    dataset: ds.Dataset
    path: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetSource:
    name: str
    plan: FleetPlan | None
    open: Callable[[], Snapshot | None]  # None: nothing written there yet
    missing: str  # the error when nothing is there

    def snapshot(self) -> Snapshot:
        found = self.open()
        if found is None:
            raise SensorManagerError(self.missing)
        return found

    def _rows(self, sql: str, params: dict[str, Any] | None = None, timeout: float | None = None,
              snapshot: Snapshot | None = None) -> QueryResult:
        return run_locked(lake.locked_connection((snapshot or self.snapshot()).dataset), sql, params, timeout)

    def _cities(self, city: str) -> list[str]:
        """The `city` values for what the user typed: the display name, and the safe name older lakes hold."""
        for sensor in self.plan.sensors if self.plan else ():
            if spells_city(sensor.city, sensor.safe_city, city):
                return [sensor.city, sensor.safe_city]
        return [city.strip(), safe_city_name(city)]

    def _where(self, filters: Filters) -> tuple[str, dict[str, Any]]:
        clauses: list[str] = []
        params: dict[str, Any] = {}
        if filters.sensor_id is not None:
            clauses.append("sensor_id = $sensor_id")
            params["sensor_id"] = filters.sensor_id
        if filters.city is not None:
            clauses.append("city IN ($city, $safe_city)")
            params["city"], params["safe_city"] = self._cities(filters.city)
        if filters.since is not None:
            clauses.append("timestamp >= $since")
            params["since"] = filters.since
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def readings(self, filters: Filters, limit: int, columns: tuple[str, ...] = READING_COLUMNS) -> QueryResult:
        where, params = self._where(filters)
        sql = (f"SELECT * FROM (SELECT {', '.join(columns)} FROM {lake.TABLE}{where} "
               f"ORDER BY timestamp DESC, sensor_id DESC, seq DESC LIMIT $limit) ORDER BY timestamp, sensor_id, seq")
        return self._rows(sql, params | {"limit": limit})

    def latest(self, filters: Filters) -> QueryResult:
        where, params = self._where(filters)
        sql = (f"SELECT {', '.join(READING_COLUMNS)} FROM {lake.TABLE}{where} "
               "QUALIFY row_number() OVER (PARTITION BY sensor_id ORDER BY timestamp DESC, seq DESC) = 1 ORDER BY sensor_id")
        return self._rows(sql, params)

    def count(self, filters: Filters) -> QueryResult:
        where, params = self._where(filters)
        return self._rows(f"SELECT count(*) AS count FROM {lake.TABLE}{where}", params)

    def list_sensors(self, filters: Filters) -> QueryResult:
        where, params = self._where(filters)
        sql = (f"SELECT sensor_id, any_value(location) AS city, count(*) AS rows, min(timestamp) AS first_timestamp, "
               f"max(timestamp) AS last_timestamp FROM {lake.TABLE}{where} GROUP BY sensor_id ORDER BY sensor_id")
        return self._rows(sql, params)

    def report(self, filters: Filters, sample_rows: int = 5) -> list[DatabaseReport]:
        """`--all`: the seed's report for the whole dataset."""
        snapshot = self.snapshot()
        where, params = self._where(filters)

        def rows(sql: str) -> list[dict[str, Any]]:
            return self._rows(sql, params, snapshot=snapshot).rows

        count = rows(f"SELECT count(*) AS n FROM {lake.TABLE}{where}")[0]["n"]
        sample = rows(f"SELECT * FROM {lake.TABLE}{where} ORDER BY timestamp LIMIT {int(sample_rows)}")
        ids = rows(f"SELECT DISTINCT sensor_id FROM {lake.TABLE}{where} ORDER BY 1 LIMIT 100")
        locations = rows(f"SELECT DISTINCT location FROM {lake.TABLE}{where} ORDER BY 1 LIMIT 100")
        return [DatabaseReport(
            path=snapshot.path, sensor_id=None, city=filters.city, size_bytes=0, wal_bytes=0,
            schema=[str(f) for f in snapshot.dataset.schema], rows=count, sample=sample,
            sensor_ids=[r["sensor_id"] for r in ids], locations=[r["location"] for r in locations], extra=snapshot.extra,
        )]

    def sql(self, statement: str, timeout: float) -> QueryResult:
        """Read-only DuckDB SQL over `sensor_readings`; file access, ATTACH and extensions are refused (exit 2).

        Stopped after `timeout` seconds (exit 1) or on Ctrl-C (exit 130)."""
        if not timeout > 0:
            raise UsageError(f"--timeout {timeout}: must be a positive number of seconds")
        return self._rows(statement, timeout=timeout)


def run_locked(conn: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None,
               timeout: float | None = None) -> QueryResult:
    """Run one statement and close the connection; Ctrl-C and `timeout` interrupt DuckDB itself.

    The statement runs on a worker thread so the main thread stays free to take SIGINT (Python runs
    signal handlers only there, and never while it waits inside DuckDB) and to interrupt the query.
    The main thread waits on an Event, not `Thread.join`: a join interrupted by Ctrl-C returns early
    on a later call, and closing the connection while DuckDB still runs aborts the process.
    """
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def execute() -> None:
        try:
            cursor = conn.execute(sql, params or {})
            columns = [d[0] for d in cursor.description]
            outcome["result"] = QueryResult(columns, [dict(zip(columns, map(_plain, row), strict=True)) for row in cursor.fetchall()])
        except BaseException as exc:  # handed to the main thread below
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=execute, name="lake-query", daemon=True).start()
    try:
        if not done.wait(timeout):
            conn.interrupt()
            done.wait()
            raise QueryTimeoutError(f"--sql: the query ran longer than {timeout:g} s and was stopped; narrow it or raise --timeout")
    except KeyboardInterrupt:
        conn.interrupt()
        done.wait()
        raise
    finally:
        conn.close()
    error = outcome.get("error")
    if isinstance(error, duckdb.Error):
        raise UsageError(f"SQL refused: {str(error).splitlines()[0]}") from None
    if error is not None:
        raise error
    return outcome["result"]


def _plain(value: Any) -> Any:
    """Timestamps in the edge DBs' text form; dates as ISO; everything else as DuckDB returns it."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat(timespec="milliseconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _shown(layout: ProjectLayout, path: Path) -> str:
    """A path as `--all` names it: relative to the project when inside it (a configured one may be anywhere)."""
    return str(path.relative_to(layout.root)) if path.is_relative_to(layout.root) else str(path)


# --- the lake -------------------------------------------------------------------------------------


def lake_source(layout: ProjectLayout, plan: FleetPlan | None) -> DatasetSource:
    def open_lake() -> Snapshot | None:
        table = lake.open_table(layout)
        if table is None:
            return None
        return Snapshot(lake.dataset(table), _shown(layout, lake.table_path(layout)), {"version": table.version()})

    return DatasetSource("lake", plan, open_lake,
                         f"{lake.table_path(layout)}: no lake table yet; nothing has been uploaded (start the fleet or run `upload`)")


# --- the Parquet archive --------------------------------------------------------------------------


def archive_root(layout: ProjectLayout, config) -> Path:
    """Where the archive sink writes: `uploader.sinks.parquet.path` (relative: to the project), else `archive/`."""
    configured = config.uploader.sinks.parquet.path if config is not None else None
    return layout.root / configured if configured else layout.archive


def archive_parts(root: Path) -> list[Path]:
    """The published part files `<City>/<CODE>/<gen>-<from>-<to>.parquet`: the archive of record.

    The compacted views `<City>/<CODE>.parquet/` hold the same rows again, and temp files are unpublished."""
    from uploader.sinks.parquet import PART_NAME

    return sorted(p for p in root.glob("*/*/*.parquet")
                  if PART_NAME.match(p.name) and not p.parent.name.endswith(".parquet")
                  and not any(part.startswith((".", "_")) for part in p.relative_to(root).parts))


def archive_source(layout: ProjectLayout, plan: FleetPlan | None, config) -> DatasetSource:
    root = archive_root(layout, config)

    def open_archive() -> Snapshot | None:
        from uploader.schema import CANONICAL_SCHEMA

        parts = archive_parts(root) if root.is_dir() else []
        if not parts:
            return None
        dataset = ds.dataset([str(p) for p in parts], schema=CANONICAL_SCHEMA, format="parquet", filesystem=pa_fs.LocalFileSystem())
        return Snapshot(dataset, _shown(layout, root), {"files": len(parts)})

    return DatasetSource("archive", plan, open_archive, f"{root}: no archive files yet; nothing has been uploaded to the parquet sink")


# --- the S3 sink's bucket -------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str
    layout: str  # delta | parquet
    region: str
    endpoint: str | None  # scheme://host[:port], or None for AWS

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)


def s3_location(config) -> S3Location:
    """Where the S3 sink writes, from config `uploader.sinks.s3`: the one place `query` reads those settings."""
    from uploader.sinks.s3 import BUCKET_NAME, S3ConfigError, S3SinkSettings, normalise_prefix, resolve_endpoint

    settings = config.uploader.sinks.named("s3") if config is not None else S3SinkSettings()
    assert isinstance(settings, S3SinkSettings)  # the registry's settings model for "s3"
    layout = settings.layout
    if not settings.bucket:
        raise UsageError("--source s3: uploader.sinks.s3.bucket is not set (the S3 sink's bucket)")
    if not BUCKET_NAME.match(settings.bucket):
        raise UsageError(f"uploader.sinks.s3.bucket {settings.bucket!r} is not a valid S3 bucket name")
    try:
        prefix, endpoint = normalise_prefix(settings.prefix), resolve_endpoint(settings.endpoint_url)
    except S3ConfigError as exc:
        raise UsageError(str(exc)) from None
    region = settings.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return S3Location(settings.bucket, prefix, layout, region, endpoint)


def _s3_filesystem(where: S3Location) -> pa_fs.S3FileSystem:
    """arrow's own S3 client: credentials from the standard chain (env, profile, instance metadata)."""
    if where.endpoint is None:
        return pa_fs.S3FileSystem(region=where.region)
    endpoint = urlsplit(where.endpoint)
    return pa_fs.S3FileSystem(region=where.region, endpoint_override=endpoint.netloc, scheme=endpoint.scheme)


def _s3_delta(where: S3Location, filesystem: pa_fs.S3FileSystem) -> Snapshot | None:
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    from uploader import lakeread
    from uploader.sinks.delta import TABLE_NAME
    from uploader.sinks.s3 import allow_http

    uri = f"s3://{where.bucket}/{where.key(TABLE_NAME)}"
    options = {"AWS_REGION": where.region} | ({"AWS_ENDPOINT_URL": where.endpoint} if where.endpoint else {})
    if allow_http():
        options["AWS_ALLOW_HTTP"] = "true"
    with lakeread.reading(uri):
        try:
            table = DeltaTable(uri, storage_options=options)
        except TableNotFoundError:
            return None
    rooted = pa_fs.SubTreeFileSystem(f"{where.bucket}/{where.key(TABLE_NAME)}", filesystem)
    return Snapshot(lakeread.open_dataset(table, rooted), uri, {"layout": "delta", "version": table.version()})


def _s3_parquet(where: S3Location, filesystem: pa_fs.S3FileSystem) -> Snapshot | None:
    from uploader.schema import CANONICAL_SCHEMA

    base = f"{where.bucket}/{where.prefix}".rstrip("/")
    found = filesystem.get_file_info(pa_fs.FileSelector(base, recursive=True, allow_not_found=True))
    # Only the data objects `city=<C>/date=<D>/…`: the sink's positions live under `_sensor_manager/`.
    objects = sorted(info.path for info in found if info.is_file and info.path.endswith(".parquet")
                     and info.path[len(base) + 1:].startswith("city="))
    if not objects:
        return None
    dataset = ds.dataset(objects, schema=CANONICAL_SCHEMA, format="parquet", filesystem=filesystem)
    return Snapshot(dataset, f"s3://{base}", {"layout": "parquet", "objects": len(objects)})


def s3_source(plan: FleetPlan | None, config) -> DatasetSource:
    where = s3_location(config)

    def open_bucket() -> Snapshot | None:
        filesystem = _s3_filesystem(where)
        try:
            return (_s3_delta if where.layout == "delta" else _s3_parquet)(where, filesystem)
        except OSError as exc:  # arrow's S3 errors: unreachable endpoint, no such bucket, access denied
            raise SensorManagerError(f"s3://{where.bucket}/{where.prefix}: {str(exc).strip().splitlines()[0]}") from None

    return DatasetSource("s3", plan, open_bucket,
                         f"s3://{where.bucket}/{where.prefix} (layout {where.layout}): nothing uploaded there yet")
