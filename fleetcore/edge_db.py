"""The edge DB facts its writer (the simulator) and its readers (uploader, CLI) share.

The fleet epoch a DB records (table `fleet_meta`), and where an edge DB may be opened: under the data root, through no symbolic link.

A link planted at `data/<City>/<CODE>/sensor_data.db` (or at a folder or SQLite side file on the way)
would make the simulator create or rewrite a DB outside the project (switching a foreign DB to WAL),
and make the uploader and the CLI read it. SQLite opens by path and Python cannot pass it
SQLITE_OPEN_NOFOLLOW, so every opener checks the path here first: O_NOFOLLOW semantics for each
component below the data root, and the real path must stay under the real data root. (The data root
itself may be a link, e.g. to a bigger disk: it is the user's choice, not something inside data/.)
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from fleetcore.errors import SensorManagerError, UsageError

SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
EDGE_DB_DEPTH = 3  # data/<City>/<CODE>/sensor_data.db


class UnsafeEdgePathError(SensorManagerError, sqlite3.DatabaseError):
    """An edge DB path leaves the data root or passes through a symbolic link.

    Also a sqlite3.DatabaseError: a reader that tolerates an unreadable DB (monitor, diagnostics,
    query --all) reports this one the same way, with this message.
    """


def confined_db_path(path: str | os.PathLike[str], data_root: str | os.PathLike[str] | None = None) -> Path:
    """The real path of the edge DB `path`, after checking it may be opened (see the module docstring).

    `data_root` defaults to the layout's: the folder three levels above the DB file. Raises
    UnsafeEdgePathError naming the offending link; a missing DB is fine (the writer creates it).
    """
    absolute = Path(os.path.abspath(path))
    if data_root is None:
        data_root = absolute.parents[min(EDGE_DB_DEPTH, len(absolute.parents)) - 1]
    root = Path(os.path.abspath(data_root))
    if not absolute.is_relative_to(root) or absolute == root:
        raise UnsafeEdgePathError(f"{path}: refusing to open an edge DB outside the data root {root}")
    current = root
    for part in absolute.relative_to(root).parts:
        current = current / part
        _refuse_link(current, path)
    for suffix in SQLITE_SIDE_FILES:
        _refuse_link(Path(f"{absolute}{suffix}"), path)
    real, real_root = absolute.resolve(), root.resolve()
    if not real.is_relative_to(real_root):
        raise UnsafeEdgePathError(f"{path}: its real path {real} is outside the data root {real_root}; refusing to open it")
    return real


def _refuse_link(candidate: Path, path: str | os.PathLike[str]) -> None:
    if candidate.is_symlink():
        where = "" if candidate == Path(os.path.abspath(path)) else f"{path}: "
        raise UnsafeEdgePathError(
            f"{where}{candidate} is a symbolic link; refusing to open it (edge DBs, their folders and SQLite"
            " side files must be real files under the data root: remove the link)"
        )


FLEET_META_SQL = "CREATE TABLE IF NOT EXISTS fleet_meta (fleet_epoch INTEGER NOT NULL)"


class FleetEpochMismatchError(UsageError):
    """A sensor DB records another fleet_epoch than the plan: the plan was lost or replaced."""

    def __init__(self, path: str | Path, recorded: int, planned: int):
        super().__init__(
            f"{path}: its readings belong to fleet_epoch {recorded} but the plan says {planned}; state/plan.json "
            f"was lost or replaced. Restore it (or set its fleet_epoch to {recorded}), or start a new epoch with "
            "`reset --yes`.")


def read_fleet_epoch(conn: sqlite3.Connection) -> int | None:
    """The fleet_epoch a sensor DB records, or None for a DB that predates `fleet_meta` (or not ours)."""
    has_table = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'fleet_meta'").fetchone()
    row = conn.execute("SELECT fleet_epoch FROM fleet_meta LIMIT 1").fetchone() if has_table else None
    return int(row[0]) if row else None
