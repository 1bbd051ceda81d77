"""`query --source edge` on the host: the sensor DBs chosen through the plan, each opened `mode=ro` and read in one short transaction."""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from fleetcore.errors import SensorManagerError
from sensor_manager.layout import ProjectLayout
from sensor_manager.observe.edge import READINGS, EdgeDatabase, connect_readonly, edge_databases, file_sizes
from sensor_manager.observe.readings import (
    LIST_COLUMNS,
    READING_COLUMNS,
    DatabaseReport,
    Filters,
    QueryResult,
    newest_first,
    spells_city,
)
from sensor_manager.plan import FleetPlan


def matches(db: EdgeDatabase, filters: Filters) -> bool:
    """Whether the filters can match this DB; the sensor id itself is still bound in SQL."""
    return ((filters.sensor_id is None or db.sensor_id == filters.sensor_id)
            and (filters.city is None or spells_city(db.city, db.safe_city, filters.city)))


def _where(filters: Filters) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if filters.sensor_id is not None:
        clauses.append("sensor_id = ?")
        params.append(filters.sensor_id)
    if filters.since is not None:
        clauses.append("timestamp >= ?")
        params.append(filters.since_text)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _rows(db: EdgeDatabase, sql: str, params: list[Any]) -> list[dict[str, Any]]:
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


def _introspect(db: EdgeDatabase) -> sqlite_utils.Database:
    return sqlite_utils.Database(connect_readonly(db.path))


def _readings_view(database: sqlite_utils.Database):
    return database.view(READINGS) if READINGS in database.view_names() else database.table(READINGS)


@dataclass(frozen=True)
class EdgeSource:
    layout: ProjectLayout
    plan: FleetPlan | None
    name: str = "edge"

    def databases(self, filters: Filters) -> list[EdgeDatabase]:
        return [db for db in edge_databases(self.layout, self.plan) if matches(db, filters) and db.path.exists()]

    def readings(self, filters: Filters, limit: int, columns: tuple[str, ...] = READING_COLUMNS) -> QueryResult:
        where, params = _where(filters)
        sql = f"SELECT {', '.join(columns)} FROM {READINGS}{where} ORDER BY id DESC LIMIT ?"
        rows: list[dict[str, Any]] = []
        for db in self.databases(filters):
            rows.extend(_rows(db, sql, [*params, limit]))
        return QueryResult(list(columns), list(reversed(newest_first(rows)[:limit])))

    def latest(self, filters: Filters) -> QueryResult:
        where, params = _where(filters)
        sql = f"SELECT {', '.join(READING_COLUMNS)} FROM {READINGS}{where} ORDER BY id DESC LIMIT 1"
        rows = [row for db in self.databases(filters) for row in _rows(db, sql, params)]
        return QueryResult(list(READING_COLUMNS), sorted(rows, key=lambda r: r["sensor_id"] or ""))

    def count(self, filters: Filters) -> QueryResult:
        where, params = _where(filters)
        total = sum(_rows(db, f"SELECT count(*) AS n FROM {READINGS}{where}", params)[0]["n"] for db in self.databases(filters))
        return QueryResult(["count"], [{"count": total}])

    def list_sensors(self, filters: Filters) -> QueryResult:
        rows = []
        for db in self.databases(filters):
            database = _introspect(db)
            try:
                readings = _readings_view(database)
                first: dict[str, Any] = next(readings.rows_where(order_by="id", limit=1, select="timestamp"), {})
                last: dict[str, Any] = next(readings.rows_where(order_by="id desc", limit=1, select="timestamp"), {})
                rows.append({
                    "sensor_id": db.sensor_id, "city": db.city, "rows": readings.count,
                    "first_timestamp": first.get("timestamp"), "last_timestamp": last.get("timestamp"),
                    "path": str(db.path.relative_to(self.layout.root)),
                })
            except sqlite3.DatabaseError as exc:
                raise SensorManagerError(f"{db.path}: {exc}") from None
            finally:
                database.conn.close()
        return QueryResult(list(LIST_COLUMNS), rows)

    def report(self, filters: Filters, sample_rows: int = 5) -> list[DatabaseReport]:
        reports = []
        for db in self.databases(filters):
            size, wal = file_sizes(db.path)
            path = str(db.path.relative_to(self.layout.root))
            database = _introspect(db)
            try:
                readings = _readings_view(database)
                schema = [database[name].schema for name in [*database.table_names(), *database.view_names()]]
                reports.append(DatabaseReport(
                    path=path, sensor_id=db.sensor_id, city=db.city, size_bytes=size, wal_bytes=wal,
                    schema=schema, rows=readings.count, sample=list(readings.rows_where(order_by="id", limit=sample_rows)),
                    sensor_ids=[r["sensor_id"] for r in database.query(f"SELECT DISTINCT sensor_id FROM {READINGS} LIMIT 20")],
                    locations=[r["location"] for r in database.query(f"SELECT DISTINCT location FROM {READINGS} LIMIT 20")],
                ))
            except sqlite3.DatabaseError as exc:
                reports.append(DatabaseReport(path, db.sensor_id, db.city, size, wal, [], 0, [], [], [], error=str(exc)))
            finally:
                database.conn.close()
        return reports
