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

from fleetcore.edge_db import confined_db_path
from sensor_manager.layout import ProjectLayout
from sensor_manager.plan import FleetPlan
from sensor_manager.simulator.db import open_readonly
from sensor_manager.simulator.limits import RESERVED_FDS, raise_open_files_limit

DB_NAME = "sensor_data.db"
READINGS = "sensor_readings"
BUSY_TIMEOUT_SECONDS = 2.0
FDS_PER_READER = 3  # DB, WAL, shared-memory index


@dataclass(frozen=True)
class EdgeDatabase:
    """One sensor's DB as the plan (or, without a plan, the data directory) names it."""

    sensor_id: str
    city: str  # display name
    safe_city: str  # safe name: directory (and the lake's `city` in lakes written before display names)
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
        return [EdgeDatabase(s.sensor_id, s.city, s.safe_city, layout.root / s.db_path) for s in plan.sensors]
    found = sorted(layout.data.glob(f"*/*/{DB_NAME}")) if layout.data.is_dir() else []
    return [EdgeDatabase(f"{p.parent.parent.name}_{p.parent.name}", p.parent.parent.name.replace("_", " "), p.parent.parent.name, p) for p in found]


def connect_readonly(path: Path) -> sqlite3.Connection:
    """The simulator's `mode=ro` connection with rows as mappings: it cannot write, and never blocks the writer."""
    conn = open_readonly(path)
    conn.isolation_level = None  # explicit BEGIN/COMMIT only: each read is one short transaction
    conn.row_factory = sqlite3.Row
    return conn


# One statement, so one implicit read transaction (a consistent snapshot) and one round trip per DB.
_STATE_SQL = f"""
SELECT f.id, f.seq, l.id, l.seq, l.timestamp,
       (SELECT generation FROM sensor_meta LIMIT 1),
       (SELECT timestamp FROM {READINGS} WHERE id > ?1 ORDER BY id LIMIT 1)
FROM (SELECT id, seq FROM {READINGS} ORDER BY id LIMIT 1) AS f,
     (SELECT id, seq, timestamp FROM {READINGS} ORDER BY id DESC LIMIT 1) AS l
"""


def _connect(path: Path) -> sqlite3.Connection:
    # A bare `mode=ro` open with no per-open pragmas: the monitor reads every DB on every refresh.
    return sqlite3.connect(f"{confined_db_path(path).as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False)


def _state(conn: sqlite3.Connection, after_id: int | None) -> EdgeState:
    row = conn.execute(_STATE_SQL, (after_id,)).fetchone()
    if row is None:
        generation = conn.execute("SELECT generation FROM sensor_meta LIMIT 1").fetchone()
        return EdgeState(None, None, None, None, None, generation[0] if generation else None)
    first_id, first_seq, max_id, max_seq, last_timestamp, generation, pending = row
    return EdgeState(first_id, max_id, first_seq, max_seq, last_timestamp, generation, pending)


def read_edge_state(path: Path, after_id: int | None = None) -> EdgeState | None:
    """Index seeks only; None when the DB does not exist yet. `after_id` asks for the first pending row's timestamp."""
    if not path.exists():
        return None
    conn = _connect(path)
    try:
        return _state(conn, after_id)
    finally:
        conn.close()


class EdgeReader:
    """Read-only connections kept open between refreshes (opening a WAL DB costs far more than the seeks).

    A kept connection holds no transaction between reads, so it never holds back the writer's
    checkpoints. A file replaced under it (moved aside, reset) has a new inode and is reopened. At most
    `capacity` connections stay open (each holds the DB, WAL and shared-memory files); the rest are
    opened per read.
    """

    def __init__(self) -> None:
        soft = raise_open_files_limit()
        self.capacity = max(0, (soft - RESERVED_FDS) // FDS_PER_READER)
        self._open: dict[Path, tuple[sqlite3.Connection, int]] = {}

    def read(self, path: Path, after_id: int | None = None) -> EdgeState | None:
        try:
            inode = path.stat().st_ino
        except OSError:
            self._drop(path)
            return None
        kept = self._open.get(path)
        if kept is not None and kept[1] != inode:
            self._drop(path)
            kept = None
        if kept is None and len(self._open) >= self.capacity:
            return read_edge_state(path, after_id)
        if kept is None:
            kept = self._open[path] = (_connect(path), inode)
        try:
            return _state(kept[0], after_id)
        except sqlite3.Error:
            self._drop(path)
            raise

    def _drop(self, path: Path) -> None:
        kept = self._open.pop(path, None)
        if kept is not None:
            kept[0].close()

    def close(self) -> None:
        for path in list(self._open):
            self._drop(path)


def file_sizes(path: Path) -> tuple[int, int]:
    """Bytes of the DB file and of its WAL (0 when absent)."""
    return _size(path), _size(path.with_name(path.name + "-wal"))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
