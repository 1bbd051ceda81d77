"""Read-only facts about the edge DBs: where they are, how far each has been written, how big it is.

Every read opens the DB `mode=ro`, runs a few index lookups in one short transaction and closes it:
the writer is never blocked and nothing grows with the table (no `COUNT(*)`). `id` is the rowid and
`seq` rises with it, so the first and last rows give the row count, the seq range and the last
write without a scan.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sensor_manager.layout import ProjectLayout
from sensor_manager.plan import FleetPlan
from sensor_manager.simulator.db import high_water, open_readonly

DB_NAME = "sensor_data.db"
READINGS = "sensor_readings"


@dataclass(frozen=True)
class EdgeDatabase:
    """One sensor's DB as the plan (or, without a plan, the data directory) names it."""

    sensor_id: str
    city: str  # display name
    city_slug: str  # safe name: directory and lake partition
    path: Path

    @property
    def relative_path(self) -> str:
        """The path relative to the data root: how an uploader names the source."""
        return self.path.parent.parent.name + "/" + self.path.parent.name + "/" + self.path.name


@dataclass(frozen=True)
class EdgeState:
    """How far one DB has been written, read in one short transaction."""

    first_id: int | None
    max_id: int | None
    first_seq: int | None
    max_seq: int | None
    last_timestamp: str | None
    generation: str | None
    pending_timestamp: str | None = None  # timestamp of the first row after a given position

    @property
    def rows(self) -> int:
        """Rows in this DB: ids are rowids that are never deleted, so the id range is the count."""
        if self.max_id is None or self.first_id is None:
            return 0
        return self.max_id - self.first_id + 1


def edge_databases(layout: ProjectLayout, plan: FleetPlan | None) -> list[EdgeDatabase]:
    """The planned DBs in plan order; without a plan, every `data/<City>/<CODE>/sensor_data.db` found."""
    if plan is not None:
        return [EdgeDatabase(s.sensor_id, s.city, s.city_slug, layout.root / s.db_path) for s in plan.sensors]
    found = sorted(layout.data.glob(f"*/*/{DB_NAME}")) if layout.data.is_dir() else []
    return [EdgeDatabase(f"{p.parent.parent.name}_{p.parent.name}", p.parent.parent.name.replace("_", " "), p.parent.parent.name, p) for p in found]


def connect_readonly(path: Path) -> sqlite3.Connection:
    """The simulator's `mode=ro` connection with rows as mappings: it cannot write, and never blocks the writer."""
    conn = open_readonly(path)
    conn.isolation_level = None  # explicit BEGIN/COMMIT only: each read is one short transaction
    conn.row_factory = sqlite3.Row
    return conn


def read_edge_state(path: Path, after_id: int | None = None) -> EdgeState | None:
    """Index lookups only; None when the DB does not exist yet. `after_id` asks for the first pending row's timestamp."""
    if not path.exists():
        return None
    conn = connect_readonly(path)
    try:
        conn.execute("BEGIN")
        mark = high_water(conn)
        first = conn.execute(f"SELECT id, seq FROM {READINGS} ORDER BY id LIMIT 1").fetchone()
        pending = None
        if after_id is not None and mark.max_id > after_id:
            row = conn.execute(f"SELECT timestamp FROM {READINGS} WHERE id > ? ORDER BY id LIMIT 1", (after_id,)).fetchone()
            pending = row["timestamp"] if row else None
        conn.execute("COMMIT")
    finally:
        conn.close()
    empty = first is None
    return EdgeState(
        first_id=None if empty else first["id"],
        max_id=None if empty else mark.max_id,
        first_seq=None if empty else first["seq"],
        max_seq=None if empty else mark.max_seq,
        last_timestamp=mark.last_timestamp,
        generation=mark.generation,
        pending_timestamp=pending,
    )


def file_sizes(path: Path) -> tuple[int, int]:
    """Bytes of the DB file and of its WAL (0 when absent)."""
    return _size(path), _size(path.with_name(path.name + "-wal"))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
