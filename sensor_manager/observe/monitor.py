"""`monitor`: per-city and per-sensor figures of a running (or stopped) project, cheap enough to refresh every 2 s.

Where each figure comes from, so nothing scans a big table:
- rows, last timestamp: each edge DB's first and last row (index seeks in one short read-only transaction);
- readings/s: the change in `seq` between refreshes (over the last 10 s), or the simulator's status file
  on the first refresh;
- uploaded position per source: the uploader's status file (`sources[].positions`), so lag keeps rising
  while an uploader is stopped; lag seconds = age of the first row after that position (one rowid seek);
- lake rows and last write per city: the Delta log (`num_records` of each file), never the data files;
- service states and restarts: the recorded runtime, else the freshness of the status files.

When the host may not open live DBs (Docker Desktop, see `observe/access.py`) no DB is opened: rows
(= the last `seq`), seq, last timestamp, readings/s and the active anomaly come from the simulators'
status files (the last one written, even when stale, for rows and seq), and lag per sensor is that
seq minus the position in the uploader's status file (lag age: the uploader's own `lag_seconds`).
"""
from __future__ import annotations

import sqlite3
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from fleetcore.errors import UsageError
from fleetcore.timestamps import iso_epoch
from sensor_manager.layout import ProjectLayout
from fleetcore.naming import city_service_slug
from sensor_manager.observe import lake
from sensor_manager.observe.access import EdgeAccess, edge_access
from sensor_manager.observe.edge import EdgeDatabase, EdgeReader, edge_databases, file_sizes
from sensor_manager.observe.services import service_statuses
from sensor_manager.plan import FleetPlan
from sensor_manager.runtimes import recorded_runtime
from fleetcore.statusfiles import is_stale, read_status

SCHEMA_VERSION = 1
RATE_WINDOW_SECONDS = 10.0
HISTORY = 30  # refreshes kept for sparklines
LAKE_SINK = "delta"
SINK_FIELDS = ("rows_shipped", "lag_rows", "lag_seconds", "last_success", "last_error", "dead_lettered", "retries",
               "failing_permanently")


@dataclass
class SensorRow:
    sensor_id: str
    city: str  # safe name (the lake's `city`)
    rows: int
    last_timestamp: str | None
    readings_per_second: float
    state: str
    active_anomaly: str | None = None
    db_bytes: int = 0
    wal_bytes: int = 0
    seq: int | None = None
    errors: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"sensor_id": self.sensor_id, "city": self.city, "rows": self.rows, "last_timestamp": self.last_timestamp,
                "readings_per_second": round(self.readings_per_second, 3), "state": self.state, "seq": self.seq,
                "active_anomaly": self.active_anomaly}


@dataclass
class CityRow:
    city: str  # safe name
    display_name: str
    sensors_total: int = 0
    sensors_running: int = 0
    readings_per_second: float = 0.0
    rows: int = 0
    anomalies: int = 0  # sensors inside an anomaly right now
    uploader_state: str = "stopped"
    lag_rows: int = 0
    lag_seconds: float | None = None
    last_upload_age_seconds: float | None = None
    errors: int = 0
    restarts: int = 0
    dead_lettered: int = 0
    lake_rows: int = 0
    rate_history: list[float] = field(default_factory=list)
    sinks: dict[str, dict[str, Any]] = field(default_factory=dict)  # the uploader status file's figures per sink

    def to_json(self) -> dict[str, Any]:
        return {
            "city": self.city, "sensors_total": self.sensors_total, "sensors_running": self.sensors_running,
            "readings_per_second": round(self.readings_per_second, 3), "rows": self.rows, "anomalies": self.anomalies,
            "uploader_state": self.uploader_state, "lag_rows": self.lag_rows, "lag_seconds": _round(self.lag_seconds),
            "last_upload_age_seconds": _round(self.last_upload_age_seconds), "errors": self.errors,
            "display_name": self.display_name, "lake_rows": self.lake_rows, "dead_lettered": self.dead_lettered,
            "restarts": self.restarts, "rate_history": [round(r, 3) for r in self.rate_history], "sinks": self.sinks,
        }


@dataclass
class Snapshot:
    taken_at: float
    project: str | None
    cities: list[CityRow]
    sensors: list[SensorRow]
    runtime: str | None = None  # as recorded by `start`
    fleet_epoch: int | None = None

    def only(self, city: str) -> "Snapshot":
        """The snapshot narrowed to one city (safe name)."""
        return Snapshot(self.taken_at, self.project, [c for c in self.cities if c.city == city], [s for s in self.sensors if s.city == city],
                        self.runtime, self.fleet_epoch)

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "cities": [c.to_json() for c in self.cities], "sensors": [s.to_json() for s in self.sensors],
                "taken_at": round(self.taken_at, 3), "project": self.project, "runtime": self.runtime, "fleet_epoch": self.fleet_epoch,
                "totals": self.totals()}

    def totals(self) -> dict[str, Any]:
        """The fleet in one line: the dashboard's header."""
        return {"sensors_running": sum(c.sensors_running for c in self.cities), "sensors_total": sum(c.sensors_total for c in self.cities),
                "readings_per_second": round(sum(c.readings_per_second for c in self.cities), 3),
                "rows": sum(c.rows for c in self.cities), "lake_rows": sum(c.lake_rows for c in self.cities)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


class Monitor:
    """Takes snapshots of one project; keeps the recent history that rates and sparklines need."""

    def __init__(self, layout: ProjectLayout, plan: FleetPlan | None, access: EdgeAccess | None = None):
        self.layout = layout
        self.plan = plan
        self.access = access or edge_access(layout)
        self.databases = edge_databases(layout, plan)
        self._seq_history: dict[str, deque[tuple[float, int]]] = {}
        self._rate_history: dict[str, deque[float]] = {}
        self._table: lake.DeltaTable | None = None
        self._reader = EdgeReader()

    def refresh(self, now: float | None = None) -> Snapshot:
        now = time.time() if now is None else now
        simulator, last_known = self._simulator_status(now)
        uploaders = {slug: read_status(self.layout.status_file("uploader", city_service_slug(slug))) for slug in self._city_slugs()}
        lake_stats = self._lake_stats()
        positions = {slug: _positions(doc, slug in lake_stats) for slug, doc in uploaders.items()}
        services = {s.name: s for s in service_statuses(self.layout)}
        cities = {slug: CityRow(slug, display) for slug, display in self._city_names().items()}
        sensors = []
        for db in self.databases:
            if self.access.host:
                row, lag = self._sensor(db, now, simulator.get(db.sensor_id), positions.get(db.city_slug), services)
            else:
                row, lag = self._sensor_from_status(db, simulator.get(db.sensor_id), last_known.get(db.sensor_id),
                                                    positions.get(db.city_slug), services)
            sensors.append(row)
            _add_sensor(cities[db.city_slug], row, lag)
        for slug, city in cities.items():
            self._finish_city(city, uploaders.get(slug), positions.get(slug) is not None, services, lake_stats.get(slug), now)
        return Snapshot(now, self.plan.project if self.plan else None, list(cities.values()), sensors, recorded_runtime(self.layout),
                        self.plan.fleet_epoch if self.plan else None)

    def city(self, name: str) -> str:
        """The safe name of the city the user typed (display name, safe name or service slug, any case)."""
        key = name.strip().casefold()
        for db in self.databases:
            if key in (db.city.casefold(), db.city_slug.casefold(), city_service_slug(db.city_slug)):
                return db.city_slug
        known = ", ".join(self._city_names().values()) or "none (no plan and no sensor DBs)"
        raise UsageError(f"--city {name!r}: not in this project; cities: {known}")

    # --- inputs -----------------------------------------------------------------------------------

    def _city_slugs(self) -> list[str]:
        return list(dict.fromkeys(db.city_slug for db in self.databases))

    def _city_names(self) -> dict[str, str]:
        return {db.city_slug: db.city for db in self.databases}

    def _simulator_status(self, now: float) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """Per-sensor entries of the simulator status files (one per process, or one per container):
        (those of fresh files, the last written of any file, stale ones included)."""
        fresh: dict[str, dict[str, Any]] = {}
        known: dict[str, dict[str, Any]] = {}
        read = [read_status(p) for p in sorted(self.layout.status_dir.glob("sensor-*.json"))] if self.layout.status_dir.is_dir() else []
        read += [read_status(db.path.parent / "status.json") for db in self.databases if (db.path.parent / "status.json").exists()]
        documents = sorted((d for d in read if d), key=lambda d: float(d.get("updated_at_epoch") or 0))
        for document in documents:  # oldest first: the newest entry of a sensor wins
            sensors = document.get("sensors") or {}
            known.update(sensors)
            if not is_stale(document, now):
                fresh.update(sensors)
        return fresh, known

    def _lake_stats(self) -> dict[str, lake.CityLakeStats]:
        if self._table is None:
            self._table = lake.open_table(self.layout)
        else:
            self._table.update_incremental()
        return lake.city_stats(self._table)

    # --- per sensor -------------------------------------------------------------------------------

    def _sensor(self, db: EdgeDatabase, now: float, status: dict | None, positions: dict | None, services: dict) -> tuple[SensorRow, tuple[int, float | None] | None]:
        position = (positions or {}).get(db.relative_path)
        state = self._read(db, position[1] if position else None)
        rows = state.rows if state else 0
        seq = state.max_seq if state else None
        running_state = _sensor_state(db, services, status)
        rate = self._rate(db.sensor_id, now, seq, status if running_state == "running" else None)
        size, wal = file_sizes(db.path)
        row = SensorRow(db.sensor_id, db.city_slug, rows, state.last_timestamp if state else None, rate, running_state,
                        (status or {}).get("active_anomaly") if running_state == "running" else None, size, wal, seq,
                        int((status or {}).get("errors") or 0))
        lag = None
        if positions is not None and state is not None:
            generation, uploaded = position if position else (None, None)
            if uploaded is None or (generation and state.generation and generation != state.generation):
                uploaded = (state.first_id or 1) - 1  # this DB (generation) has not been shipped at all
                first_pending = self._read(db, uploaded) if rows else None
                pending = first_pending.pending_timestamp if first_pending else None
            else:
                pending = state.pending_timestamp
            lag_rows = max(0, (state.max_id or 0) - uploaded)
            pending_epoch = iso_epoch(pending)
            lag = (lag_rows, now - pending_epoch if lag_rows and pending_epoch else None)
        return row, lag

    def _sensor_from_status(self, db: EdgeDatabase, status: dict | None, known: dict | None, positions: dict | None,
                            services: dict) -> tuple[SensorRow, tuple[int, float | None] | None]:
        """The sensor's figures without opening its DB: the simulator's and the uploader's status files only."""
        entry = known or {}
        seq = int(entry["seq"]) if entry.get("seq") is not None else None
        rows = seq if seq is not None else int(entry.get("rows_written") or 0)
        running_state = _sensor_state(db, services, status)
        live = status if running_state == "running" else None
        size, wal = file_sizes(db.path)
        row = SensorRow(db.sensor_id, db.city_slug, rows, entry.get("last_timestamp"), float((live or {}).get("readings_per_second") or 0.0),
                        running_state, (live or {}).get("active_anomaly"), size, wal, seq, int((status or {}).get("errors") or 0))
        lag = None
        if positions is not None and known is not None:
            generation, uploaded = positions.get(db.relative_path) or (None, None)
            if uploaded is None or (generation and entry.get("generation") and generation != entry.get("generation")):
                uploaded = 0  # this DB (generation) has not been shipped at all
            lag = (max(0, rows - uploaded), None)
        return row, lag

    def _read(self, db: EdgeDatabase, after_id: int | None):
        try:
            return self._reader.read(db.path, after_id)
        except sqlite3.DatabaseError:
            return None  # unreadable right now (diagnostics says why); the row shows 0 rows

    def close(self) -> None:
        self._reader.close()

    def _rate(self, sensor_id: str, now: float, seq: int | None, status: dict | None) -> float:
        """Readings per second over the last 10 s from seq changes; the status file's figure until there is history."""
        history = self._seq_history.setdefault(sensor_id, deque())
        if seq is not None:
            history.append((now, seq))
        while len(history) > 2 and history[1][0] <= now - RATE_WINDOW_SECONDS:
            history.popleft()
        if len(history) >= 2 and history[-1][0] > history[0][0]:
            return max(0.0, (history[-1][1] - history[0][1]) / (history[-1][0] - history[0][0]))
        return float((status or {}).get("readings_per_second") or 0.0)

    # --- per city ---------------------------------------------------------------------------------

    def _finish_city(self, city: CityRow, uploader: dict | None, has_positions: bool, services: dict, stats, now: float) -> None:
        city.lake_rows = stats.rows if stats else 0
        if not has_positions:
            # No uploader status yet: compare the edge with the lake (rows of older generations included).
            city.lag_rows = max(0, city.rows - city.lake_rows)
        sinks = (uploader or {}).get("sinks") or {}
        sink = sinks.get(LAKE_SINK) or (next(iter(sinks.values())) if sinks else {})
        if city.lag_seconds is None and city.lag_rows and sink.get("lag_seconds") is not None:
            city.lag_seconds = float(sink["lag_seconds"])
        last = iso_epoch(sink.get("last_success")) or (stats.last_write_epoch if stats else None)
        city.last_upload_age_seconds = max(0.0, now - last) if last else None
        city.errors += sum(int(s.get("retries") or 0) for s in sinks.values())
        city.dead_lettered = sum(int(s.get("dead_lettered") or 0) for s in sinks.values())
        city.sinks = {name: {key: s.get(key) for key in SINK_FIELDS} for name, s in sinks.items()}
        name = f"uploader-{city_service_slug(city.city)}"
        city.uploader_state = _uploader_state(services.get(name), uploader, now)
        city.restarts += services[name].restarts if name in services else 0
        history = self._rate_history.setdefault(city.city, deque(maxlen=HISTORY))
        history.append(city.readings_per_second)
        city.rate_history = list(history)


def _positions(uploader: dict | None, in_lake: bool) -> dict[str, tuple[str | None, int]] | None:
    """source path -> (generation, last id the lake confirmed), from the uploader's status file.

    Without a status file the positions are known only when the lake has nothing of the city (all
    pending); otherwise None, and the city's lag falls back to edge rows minus lake rows.
    """
    if not uploader:
        return None if in_lake else {}
    positions = {}
    for source in uploader.get("sources") or []:
        marks = source.get("positions") or {}
        if not marks:
            continue
        mark = marks[LAKE_SINK] if LAKE_SINK in marks else min(marks.values())
        positions[str(source.get("source", "")).removeprefix("data/")] = (source.get("generation"), int(mark or 0))
    return positions


def _sensor_state(db: EdgeDatabase, services: dict, status: dict | None) -> str:
    for service in services.values():
        if service.role == "sensor" and db.sensor_id in service.sensors:
            return service.state
    return "running" if status is not None else "stopped"


def _uploader_state(service, document: dict | None, now: float) -> str:
    if service is not None and service.state != "running":
        return service.state
    if document and not is_stale(document, now):
        return str(document.get("state") or "running")
    return "running" if service is not None else "stopped"


def _add_sensor(city: CityRow, row: SensorRow, lag: tuple[int, float | None] | None) -> None:
    city.sensors_total += 1
    city.sensors_running += row.state == "running"
    city.readings_per_second += row.readings_per_second
    city.rows += row.rows
    city.anomalies += row.active_anomaly is not None
    city.errors += row.errors
    if lag is not None:
        city.lag_rows += lag[0]
        if lag[1] is not None:
            city.lag_seconds = max(city.lag_seconds or 0.0, lag[1])


def snapshot(layout: ProjectLayout, plan: FleetPlan | None) -> Snapshot:
    """One snapshot (`monitor --once`)."""
    watch = Monitor(layout, plan)
    try:
        return watch.refresh()
    finally:
        watch.close()
