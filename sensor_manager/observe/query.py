"""`query`: readings from the edge DBs (read-only) or the lake (DuckDB over the Delta table).

Every filter reaches SQL as a bound parameter, never as text, so a hostile sensor id matches nothing.
Edge DBs are chosen through the plan (by sensor id or city), then each is opened `mode=ro` and read in
one short transaction. Free SQL (`--sql`) runs only over the lake, in a locked DuckDB connection.
When the host may not open live DBs (Docker Desktop, `observe/access.py`), edge queries run inside the
uploader containers instead (`observe/container_query.py`).
"""
from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Literal

import duckdb
import sqlite_utils

from fleetcore.errors import SensorManagerError, UsageError
from sensor_manager.layout import ProjectLayout
from fleetcore.naming import city_service_slug, safe_city_name
from sensor_manager.observe import lake
from sensor_manager.observe.edge import READINGS, EdgeDatabase, connect_readonly, edge_databases, file_sizes
from sensor_manager.plan import FleetPlan

SCHEMA_VERSION = 1
Source = Literal["edge", "lake"]

# The columns a reading query returns from either source, so edge and lake results line up.
READING_COLUMNS = (
    "timestamp", "sensor_id", "location", "temperature", "humidity", "pressure", "vibration", "voltage",
    "status_code", "anomaly_flag", "anomaly_type", "seq",
)
METRICS = ("temperature", "humidity", "pressure", "vibration", "voltage")
MAX_LIMIT = 1_000_000


class QueryTimeoutError(SensorManagerError):
    """A lake query outlived its `--timeout`."""


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "columns": self.columns, "rows": self.rows}


@dataclass(frozen=True)
class Filters:
    sensor_id: str | None = None
    city: str | None = None
    since: datetime | None = None

    @property
    def since_text(self) -> str | None:
        """`since` in the edge DBs' timestamp form (UTC, milliseconds, +00:00), which sorts as text."""
        return self.since.isoformat(timespec="milliseconds") if self.since else None


@dataclass
class DatabaseReport:
    """One entry of `query --all`: the seed's per-DB report."""

    path: str
    sensor_id: str | None
    city: str | None
    size_bytes: int
    wal_bytes: int
    schema: list[str]
    rows: int
    sample: list[dict[str, Any]]
    sensor_ids: list[str]
    locations: list[str]
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "extra"} | self.extra


# --- edge ---------------------------------------------------------------------------------------


def selected_databases(layout: ProjectLayout, plan: FleetPlan | None, filters: Filters) -> list[EdgeDatabase]:
    """The DBs the filters can match; the sensor id itself is still bound in SQL."""
    chosen = []
    for db in edge_databases(layout, plan):
        if filters.sensor_id is not None and db.sensor_id != filters.sensor_id:
            continue
        if filters.city is not None and not _is_city(db, filters.city):
            continue
        chosen.append(db)
    return [db for db in chosen if db.path.exists()]


def _is_city(db: EdgeDatabase, name: str) -> bool:
    return _spells_city(db.city, db.safe_city, name)


def _spells_city(city: str, safe_city: str, name: str) -> bool:
    """Whether `name` spells the city: its display name, safe name or slug (any case, accents optional)."""
    key = name.strip().casefold()
    return key in (city.casefold(), safe_city.casefold(), city_service_slug(safe_city)) or (
        safe_city_name(name).casefold() == safe_city.casefold()
    )


def _edge_where(filters: Filters) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if filters.sensor_id is not None:
        clauses.append("sensor_id = ?")
        params.append(filters.sensor_id)
    if filters.since is not None:
        clauses.append("timestamp >= ?")
        params.append(filters.since_text)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _edge_rows(db: EdgeDatabase, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    try:
        conn = connect_readonly(db.path)
    except sqlite3.Error as exc:
        raise SensorManagerError(f"{db.path}: cannot open read-only: {exc}") from None
    try:
        return [dict(row) for row in conn.execute(sql, params)]
    except sqlite3.DatabaseError as exc:
        raise SensorManagerError(f"{db.path}: {exc}") from None
    finally:
        conn.close()


def _newest_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (str(r["timestamp"]), r["sensor_id"] or "", r["seq"] or 0), reverse=True)


def edge_readings(layout: ProjectLayout, plan: FleetPlan | None, filters: Filters, limit: int, columns=READING_COLUMNS) -> QueryResult:
    """The newest `limit` matching readings across the selected DBs, oldest first."""
    where, params = _edge_where(filters)
    sql = f"SELECT {', '.join(columns)} FROM {READINGS}{where} ORDER BY id DESC LIMIT ?"
    rows: list[dict[str, Any]] = []
    for db in selected_databases(layout, plan, filters):
        rows.extend(_edge_rows(db, sql, [*params, limit]))
    return QueryResult(list(columns), list(reversed(_newest_first(rows)[:limit])))


def edge_latest(layout: ProjectLayout, plan: FleetPlan | None, filters: Filters) -> QueryResult:
    """The newest matching reading of each sensor."""
    where, params = _edge_where(filters)
    sql = f"SELECT {', '.join(READING_COLUMNS)} FROM {READINGS}{where} ORDER BY id DESC LIMIT 1"
    rows = [row for db in selected_databases(layout, plan, filters) for row in _edge_rows(db, sql, params)]
    return QueryResult(list(READING_COLUMNS), sorted(rows, key=lambda r: r["sensor_id"] or ""))


def edge_count(layout: ProjectLayout, plan: FleetPlan | None, filters: Filters) -> QueryResult:
    where, params = _edge_where(filters)
    total = sum(_edge_rows(db, f"SELECT count(*) AS n FROM {READINGS}{where}", params)[0]["n"] for db in selected_databases(layout, plan, filters))
    return QueryResult(["count"], [{"count": total}])


def _introspect(db: EdgeDatabase) -> sqlite_utils.Database:
    return sqlite_utils.Database(connect_readonly(db.path))


def _readings_view(database: sqlite_utils.Database):
    return database.view(READINGS) if READINGS in database.view_names() else database.table(READINGS)


def edge_list(layout: ProjectLayout, plan: FleetPlan | None, filters: Filters) -> QueryResult:
    """One row per sensor DB: rows, first and last timestamp."""
    columns = ["sensor_id", "city", "rows", "first_timestamp", "last_timestamp", "path"]
    rows = []
    for db in selected_databases(layout, plan, filters):
        database = _introspect(db)
        try:
            readings = _readings_view(database)
            first: dict[str, Any] = next(readings.rows_where(order_by="id", limit=1, select="timestamp"), {})
            last: dict[str, Any] = next(readings.rows_where(order_by="id desc", limit=1, select="timestamp"), {})
            rows.append({
                "sensor_id": db.sensor_id, "city": db.city, "rows": readings.count,
                "first_timestamp": first.get("timestamp"), "last_timestamp": last.get("timestamp"),
                "path": str(db.path.relative_to(layout.root)),
            })
        except sqlite3.DatabaseError as exc:
            raise SensorManagerError(f"{db.path}: {exc}") from None
        finally:
            database.conn.close()
    return QueryResult(columns, rows)


def edge_report(layout: ProjectLayout, plan: FleetPlan | None, filters: Filters, sample_rows: int = 5) -> list[DatabaseReport]:
    """`--all`: schema, row count, sample rows, distinct ids and locations of every selected DB."""
    reports = []
    for db in selected_databases(layout, plan, filters):
        size, wal = file_sizes(db.path)
        database = _introspect(db)
        try:
            readings = _readings_view(database)
            schema = [database[name].schema for name in [*database.table_names(), *database.view_names()]]
            reports.append(DatabaseReport(
                path=str(db.path.relative_to(layout.root)), sensor_id=db.sensor_id, city=db.city, size_bytes=size, wal_bytes=wal,
                schema=schema, rows=readings.count, sample=list(readings.rows_where(order_by="id", limit=sample_rows)),
                sensor_ids=[r["sensor_id"] for r in database.query(f"SELECT DISTINCT sensor_id FROM {READINGS} LIMIT 20")],
                locations=[r["location"] for r in database.query(f"SELECT DISTINCT location FROM {READINGS} LIMIT 20")],
            ))
        except sqlite3.DatabaseError as exc:
            reports.append(DatabaseReport(str(db.path.relative_to(layout.root)), db.sensor_id, db.city, size, wal, [], 0, [], [], [], error=str(exc)))
        finally:
            database.conn.close()
    return reports


# --- lake ---------------------------------------------------------------------------------------


def _lake_connection(layout: ProjectLayout) -> duckdb.DuckDBPyConnection:
    table = lake.open_table(layout)
    if table is None:
        raise SensorManagerError(f"{lake.table_path(layout)}: no lake table yet; nothing has been uploaded (start the fleet or run `upload`)")
    return lake.locked_connection(table)


def _lake_cities(plan: FleetPlan | None, city: str) -> list[str]:
    """The lake's `city` values for what the user typed: the display name, and the safe name older lakes hold."""
    for sensor in plan.sensors if plan else ():
        if _spells_city(sensor.city, sensor.safe_city, city):
            return [sensor.city, sensor.safe_city]
    return [city.strip(), safe_city_name(city)]


def _lake_where(plan: FleetPlan | None, filters: Filters) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if filters.sensor_id is not None:
        clauses.append("sensor_id = $sensor_id")
        params["sensor_id"] = filters.sensor_id
    if filters.city is not None:
        clauses.append("city IN ($city, $safe_city)")
        params["city"], params["safe_city"] = _lake_cities(plan, filters.city)
    if filters.since is not None:
        clauses.append("timestamp >= $since")
        params["since"] = filters.since
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _lake_rows(conn: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None,
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


def _lake_select() -> str:
    return ", ".join(READING_COLUMNS)


def lake_readings(layout: ProjectLayout, plan: FleetPlan | None, filters: Filters, limit: int, columns=READING_COLUMNS) -> QueryResult:
    where, params = _lake_where(plan, filters)
    sql = (f"SELECT * FROM (SELECT {', '.join(columns)} FROM {lake.TABLE}{where} "
           f"ORDER BY timestamp DESC, sensor_id DESC, seq DESC LIMIT $limit) ORDER BY timestamp, sensor_id, seq")
    return _lake_rows(_lake_connection(layout), sql, params | {"limit": limit})


def lake_latest(layout: ProjectLayout, plan: FleetPlan | None, filters: Filters) -> QueryResult:
    where, params = _lake_where(plan, filters)
    sql = (f"SELECT {_lake_select()} FROM {lake.TABLE}{where} "
           "QUALIFY row_number() OVER (PARTITION BY sensor_id ORDER BY timestamp DESC, seq DESC) = 1 ORDER BY sensor_id")
    return _lake_rows(_lake_connection(layout), sql, params)


def lake_count(layout: ProjectLayout, plan: FleetPlan | None, filters: Filters) -> QueryResult:
    where, params = _lake_where(plan, filters)
    return _lake_rows(_lake_connection(layout), f"SELECT count(*) AS count FROM {lake.TABLE}{where}", params)


def lake_list(layout: ProjectLayout, plan: FleetPlan | None, filters: Filters) -> QueryResult:
    where, params = _lake_where(plan, filters)
    sql = (f"SELECT sensor_id, any_value(location) AS city, count(*) AS rows, min(timestamp) AS first_timestamp, "
           f"max(timestamp) AS last_timestamp FROM {lake.TABLE}{where} GROUP BY sensor_id ORDER BY sensor_id")
    return _lake_rows(_lake_connection(layout), sql, params)


def lake_report(layout: ProjectLayout, plan: FleetPlan | None, filters: Filters, sample_rows: int = 5) -> list[DatabaseReport]:
    """`--all --source lake`: the same report for the Delta table."""
    table = lake.open_table(layout)
    if table is None:
        raise SensorManagerError(f"{lake.table_path(layout)}: no lake table yet; nothing has been uploaded")
    where, params = _lake_where(plan, filters)
    count = _lake_rows(lake.locked_connection(table), f"SELECT count(*) AS n FROM {lake.TABLE}{where}", params).rows[0]["n"]
    sample = _lake_rows(lake.locked_connection(table), f"SELECT * FROM {lake.TABLE}{where} ORDER BY timestamp LIMIT {int(sample_rows)}", params).rows
    ids = _lake_rows(lake.locked_connection(table), f"SELECT DISTINCT sensor_id FROM {lake.TABLE}{where} ORDER BY 1 LIMIT 100", params).rows
    locations = _lake_rows(lake.locked_connection(table), f"SELECT DISTINCT location FROM {lake.TABLE}{where} ORDER BY 1 LIMIT 100", params).rows
    return [DatabaseReport(
        path=str(lake.table_path(layout).relative_to(layout.root)), sensor_id=None, city=filters.city, size_bytes=0, wal_bytes=0,
        schema=[str(field) for field in lake.dataset(table).schema], rows=count, sample=sample,
        sensor_ids=[r["sensor_id"] for r in ids], locations=[r["location"] for r in locations],
        extra={"version": table.version()},
    )]


def run_sql(layout: ProjectLayout, sql: str, timeout: float) -> QueryResult:
    """Read-only DuckDB SQL over the lake's `sensor_readings`; file access, ATTACH and extensions are refused (exit 2).

    Stopped after `timeout` seconds (exit 1) or on Ctrl-C (exit 130)."""
    if not timeout > 0:
        raise UsageError(f"--timeout {timeout}: must be a positive number of seconds")
    return _lake_rows(_lake_connection(layout), sql, timeout=timeout)


# --- one entry point per mode, by source ---------------------------------------------------------


def _in_containers(layout: ProjectLayout, source: Source) -> bool:
    """Edge reads that must run inside the uploader containers (the host may not open live DBs)."""
    from sensor_manager.observe.access import host_may_open_edge_dbs

    return source == "edge" and not host_may_open_edge_dbs(layout)


def readings(layout, plan, source: Source, filters: Filters, limit: int, columns=READING_COLUMNS) -> QueryResult:
    if limit < 1:
        raise UsageError(f"--limit {limit}: must be at least 1")
    if limit > MAX_LIMIT:
        raise UsageError(f"--limit {limit}: at most {MAX_LIMIT} (rows are held in memory)")
    if _in_containers(layout, source):
        from sensor_manager.observe import container_query

        return container_query.readings(layout, plan, filters, limit, columns)
    return (edge_readings if source == "edge" else lake_readings)(layout, plan, filters, limit, columns)


def latest(layout, plan, source: Source, filters: Filters) -> QueryResult:
    if _in_containers(layout, source):
        from sensor_manager.observe import container_query

        return container_query.latest(layout, plan, filters)
    return (edge_latest if source == "edge" else lake_latest)(layout, plan, filters)


def count(layout, plan, source: Source, filters: Filters) -> QueryResult:
    if _in_containers(layout, source):
        from sensor_manager.observe import container_query

        return container_query.count(layout, plan, filters)
    return (edge_count if source == "edge" else lake_count)(layout, plan, filters)


def list_sensors(layout, plan, source: Source, filters: Filters) -> QueryResult:
    if _in_containers(layout, source):
        from sensor_manager.observe import container_query

        return container_query.list_sensors(layout, plan, filters)
    return (edge_list if source == "edge" else lake_list)(layout, plan, filters)


def report(layout, plan, source: Source, filters: Filters) -> list[DatabaseReport]:
    if _in_containers(layout, source):
        from sensor_manager.observe import container_query

        return container_query.report(layout, plan, filters)
    return (edge_report if source == "edge" else lake_report)(layout, plan, filters)
