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
from fleetcore.naming import city_service_slug
from fleetcore.timestamps import iso_epoch
from sensor_manager.layout import ProjectLayout
from sensor_manager.observe import lake
from sensor_manager.observe.access import EdgeAccess, edge_access
from sensor_manager.observe.edge import EdgeDatabase, EdgeReader, edge_databases, file_sizes
from sensor_manager.observe.services import service_statuses
from sensor_manager.plan import FleetPlan
from sensor_manager.runtimes import recorded_runtime
from sensor_manager.simulator.status_file import SensorEntry, SimulatorStatus
from uploader.checkpoints import checkpoint_path
from uploader.shipping import parse_app_id
from uploader.status_file import UploaderStatus

SCHEMA_VERSION = 1
RATE_WINDOW_SECONDS = 10.0
HISTORY = 30  # refreshes kept for sparklines
LAKE_SINK = "delta"
SINK_FIELDS = ("rows_shipped", "lag_rows", "lag_seconds", "last_success", "last_error", "dead_lettered", "retries",
               "failing_permanently", "request_units", "request_units_per_second", "throttled")


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
        uploaders = {safe: UploaderStatus.read(self.layout.status_file("uploader", city_service_slug(safe))) for safe in self._safe_cities()}
        lake_stats = self._lake_stats()
        positions = {safe: _positions(doc, safe in lake_stats, self._checkpoints(safe)) for safe, doc in uploaders.items()}
        services = {s.name: s for s in service_statuses(self.layout)}
        cities = {safe: CityRow(safe, display) for safe, display in self._city_names().items()}
        sensors = []
        for db in self.databases:
            if self.access.host:
                row, lag = self._sensor(db, now, simulator.get(db.sensor_id), positions.get(db.safe_city), services)
            else:
                row, lag = self._sensor_from_status(db, simulator.get(db.sensor_id), last_known.get(db.sensor_id),
                                                    positions.get(db.safe_city), services)
            sensors.append(row)
            _add_sensor(cities[db.safe_city], row, lag)
        for safe, city in cities.items():
            self._finish_city(city, uploaders.get(safe), positions.get(safe) is not None, services, lake_stats.get(safe), now)
        return Snapshot(now, self.plan.project if self.plan else None, list(cities.values()), sensors, recorded_runtime(self.layout),
                        self.plan.fleet_epoch if self.plan else None)

    def city(self, name: str) -> str:
        """The safe name of the city the user typed (display name, safe name or service slug, any case)."""
        key = name.strip().casefold()
        for db in self.databases:
            if key in (db.city.casefold(), db.safe_city.casefold(), city_service_slug(db.safe_city)):
                return db.safe_city
        known = ", ".join(self._city_names().values()) or "none (no plan and no sensor DBs)"
        raise UsageError(f"--city {name!r}: not in this project; cities: {known}")

    # --- inputs -----------------------------------------------------------------------------------

    def _safe_cities(self) -> list[str]:
        return list(dict.fromkeys(db.safe_city for db in self.databases))

    def _city_names(self) -> dict[str, str]:
        return {db.safe_city: db.city for db in self.databases}

    def _simulator_status(self, now: float) -> tuple[dict[str, SensorEntry], dict[str, SensorEntry]]:
        """Per-sensor entries of the simulator status files (one per process, or one per container):
        (those of fresh files, the last written of any file, stale ones included)."""
        fresh: dict[str, SensorEntry] = {}
        known: dict[str, SensorEntry] = {}
        read = [SimulatorStatus.read(p) for p in sorted(self.layout.status_dir.glob("sensor-*.json"))] if self.layout.status_dir.is_dir() else []
        read += [SimulatorStatus.read(db.path.parent / "status.json") for db in self.databases if (db.path.parent / "status.json").exists()]
        documents = sorted((d for d in read if d), key=lambda d: d.updated_at_epoch)
        for document in documents:  # oldest first: the newest entry of a sensor wins
            known.update(document.sensors)
            if not document.is_stale(now):
                fresh.update(document.sensors)
        return fresh, known

    def _checkpoints(self, safe_city: str) -> dict[str, tuple[str | None, int]]:
        """source path -> (generation, position) the city's uploader last persisted for the lake, in this
        project's current fleet epoch (newest ship generation): what it resumes from after a restart."""
        path = checkpoint_path(self.layout.state, city_service_slug(safe_city))
        if self.plan is None or not path.exists():
            return {}
        try:
            conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=1)
            try:
                rows = conn.execute("SELECT app_id, position FROM checkpoints WHERE sink = ?", (LAKE_SINK,)).fetchall()
            finally:
                conn.close()
        except sqlite3.Error:
            return {}  # being rebuilt or unreadable: the uploader's status file will say
        newest: dict[str, tuple[int, str, int]] = {}
        for app_id, position in rows:
            parsed = parse_app_id(app_id)
            if parsed is None or (parsed[0].project, parsed[0].fleet_epoch) != (self.plan.project, self.plan.fleet_epoch):
                continue
            namespace, key = parsed
            if key.path not in newest or namespace.ship_generation > newest[key.path][0]:
                newest[key.path] = (namespace.ship_generation, key.generation, int(position))
        return {source: (generation, position) for source, (_, generation, position) in newest.items()}

    def _lake_stats(self) -> dict[str, lake.CityLakeStats]:
        if self._table is None:
            self._table = lake.open_table(self.layout)
        else:
            lake.refresh(self._table)
        return lake.city_stats(self._table)

    # --- per sensor -------------------------------------------------------------------------------

    def _sensor(self, db: EdgeDatabase, now: float, status: SensorEntry | None, positions: dict | None, services: dict) -> tuple[SensorRow, tuple[int, float | None] | None]:
        position = (positions or {}).get(db.relative_path)
        state = self._read(db, position[1] if position else None)
        rows = state.rows if state else 0
        seq = state.max_seq if state else None
        running_state = _sensor_state(db, services, status)
        rate = self._rate(db.sensor_id, now, seq, status if running_state == "running" else None)
        size, wal = file_sizes(db.path)
        row = SensorRow(db.sensor_id, db.safe_city, rows, state.last_timestamp if state else None, rate, running_state,
                        status.active_anomaly if status and running_state == "running" else None, size, wal, seq,
                        status.errors if status else 0)
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

    def _sensor_from_status(self, db: EdgeDatabase, status: SensorEntry | None, known: SensorEntry | None, positions: dict | None,
                            services: dict) -> tuple[SensorRow, tuple[int, float | None] | None]:
        """The sensor's figures without opening its DB: the simulator's and the uploader's status files only."""
        entry = known or SensorEntry()
        seq = entry.seq
        rows = seq if seq is not None else entry.rows_written
        running_state = _sensor_state(db, services, status)
        live = status if running_state == "running" else None
        size, wal = file_sizes(db.path)
        row = SensorRow(db.sensor_id, db.safe_city, rows, entry.last_timestamp, live.readings_per_second if live else 0.0,
                        running_state, live.active_anomaly if live else None, size, wal, seq, status.errors if status else 0)
        lag = None
        if positions is not None and known is not None:
            generation, uploaded = positions.get(db.relative_path) or (None, None)
            if uploaded is None or (generation and entry.generation and generation != entry.generation):
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

    def _rate(self, sensor_id: str, now: float, seq: int | None, status: SensorEntry | None) -> float:
        """Readings per second over the last 10 s from seq changes; the status file's figure until there is history."""
        history = self._seq_history.setdefault(sensor_id, deque())
        if seq is not None:
            history.append((now, seq))
        while len(history) > 2 and history[1][0] <= now - RATE_WINDOW_SECONDS:
            history.popleft()
        if len(history) >= 2 and history[-1][0] > history[0][0]:
            return max(0.0, (history[-1][1] - history[0][1]) / (history[-1][0] - history[0][0]))
        return status.readings_per_second if status else 0.0

    # --- per city ---------------------------------------------------------------------------------

    def _finish_city(self, city: CityRow, uploader: UploaderStatus | None, has_positions: bool, services: dict, stats, now: float) -> None:
        city.lake_rows = stats.rows if stats else 0
        if not has_positions:
            # No uploader status yet: compare the edge with the lake (rows of older generations included).
            city.lag_rows = max(0, city.rows - city.lake_rows)
        sinks = uploader.sinks if uploader else {}
        sink = sinks.get(LAKE_SINK) or next(iter(sinks.values()), None)
        if city.lag_seconds is None and city.lag_rows and sink is not None:
            city.lag_seconds = sink.lag_seconds
        last = iso_epoch(sink.last_success if sink else None) or (stats.last_write_epoch if stats else None)
        city.last_upload_age_seconds = max(0.0, now - last) if last else None
        city.errors += sum(s.retries for s in sinks.values())
        city.dead_lettered = sum(s.dead_lettered for s in sinks.values())
        city.sinks = {name: {key: getattr(s, key) for key in SINK_FIELDS} for name, s in sinks.items()}
        name = f"uploader-{city_service_slug(city.city)}"
        city.uploader_state = _uploader_state(services.get(name), uploader, now)
        city.restarts += services[name].restarts if name in services else 0
        history = self._rate_history.setdefault(city.city, deque(maxlen=HISTORY))
        history.append(city.readings_per_second)
        city.rate_history = list(history)


def _positions(uploader: UploaderStatus | None, in_lake: bool, persisted: dict[str, tuple[str | None, int]]) -> dict[str, tuple[str | None, int]] | None:
    """source path -> (generation, last id the lake confirmed), from the uploader's status file, over the
    positions its checkpoint store persisted (`persisted`): right after a restart the status file lists
    no position until the first cycle, and the lag is not every row.

    Without either the positions are known only when the lake has nothing of the city (all pending);
    otherwise None, and the city's lag falls back to edge rows minus lake rows.
    """
    if uploader is None and not persisted:
        return None if in_lake else {}
    positions = dict(persisted)
    for source in uploader.sources if uploader else []:
        marks = source.positions
        if not marks:
            continue
        mark = marks[LAKE_SINK] if LAKE_SINK in marks else min(marks.values())
        positions[source.source.removeprefix("data/")] = (source.generation, mark)
    return positions


def _sensor_state(db: EdgeDatabase, services: dict, status: SensorEntry | None) -> str:
    for service in services.values():
        if service.role == "sensor" and db.sensor_id in service.sensors:
            return service.state
    return "running" if status is not None else "stopped"


def _uploader_state(service, document: UploaderStatus | None, now: float) -> str:
    if service is not None and service.state != "running":
        return service.state
    if document and not document.is_stale(now):
        return document.state or "running"
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
