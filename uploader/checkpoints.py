"""The checkpoint store: per sink, per source (app id), the last source id the sink confirmed.

A SQLite DB in the state root (`checkpoints/uploader-<id>.sqlite`); every update is one transaction,
so a kill -9 leaves either the old or the new position. It is a cache: at start each sink's own durable
position (`resume_from`) wins. A missing store is created; a corrupt one is moved aside
(`*.corrupt-<time>`) and rebuilt from the sinks' truth, never a silent stall.
"""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
  sink TEXT NOT NULL, app_id TEXT NOT NULL, position INTEGER NOT NULL, updated_at REAL NOT NULL,
  PRIMARY KEY (sink, app_id));
CREATE TABLE IF NOT EXISTS windows (
  sink TEXT NOT NULL, app_id TEXT NOT NULL, state BLOB NOT NULL, updated_at REAL NOT NULL,
  PRIMARY KEY (sink, app_id));
CREATE TABLE IF NOT EXISTS stages (sink TEXT PRIMARY KEY, stage TEXT NOT NULL, updated_at REAL NOT NULL)"""


def checkpoint_path(state_root: Path, uploader_id: str) -> Path:
    return state_root / "checkpoints" / f"uploader-{uploader_id}.sqlite"


class CheckpointStore:
    def __init__(self, path: Path):
        self.path = path
        self.rebuilt_from: Path | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._open()
        except sqlite3.DatabaseError:
            self.rebuilt_from = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            path.rename(self.rebuilt_from)
            for side in ("-wal", "-shm"):
                Path(f"{path}{side}").unlink(missing_ok=True)
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.executescript(SCHEMA)
        db.execute("SELECT count(*) FROM checkpoints").fetchone()  # a corrupt file fails here
        return db

    def get(self, sink: str, app_id: str) -> int | None:
        row = self._db.execute("SELECT position FROM checkpoints WHERE sink = ? AND app_id = ?", (sink, app_id)).fetchone()
        return int(row[0]) if row else None

    def set(self, sink: str, app_id: str, position: int) -> None:
        self._db.execute(
            "INSERT INTO checkpoints (sink, app_id, position, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (sink, app_id) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
            (sink, app_id, position, time.time()))

    def get_windows(self, sink: str, app_id: str) -> bytes | None:
        """The aggregated stage's saved state for a sink and source (`stages.aggregate.Windows` bytes)."""
        row = self._db.execute("SELECT state FROM windows WHERE sink = ? AND app_id = ?", (sink, app_id)).fetchone()
        return bytes(row[0]) if row else None

    def set_windows(self, sink: str, app_id: str, state: bytes) -> None:
        self._db.execute(
            "INSERT INTO windows (sink, app_id, state, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (sink, app_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
            (sink, app_id, state, time.time()))

    def get_stage(self, sink: str) -> str | None:
        """The stage a sink last received (a restart under another stage is a stage switch too)."""
        row = self._db.execute("SELECT stage FROM stages WHERE sink = ?", (sink,)).fetchone()
        return str(row[0]) if row else None

    def set_stage(self, sink: str, stage: str) -> None:
        self._db.execute("INSERT INTO stages (sink, stage, updated_at) VALUES (?, ?, ?)"
                         " ON CONFLICT (sink) DO UPDATE SET stage = excluded.stage, updated_at = excluded.updated_at",
                         (sink, stage, time.time()))

    def all(self) -> dict[tuple[str, str], int]:
        return {(s, a): int(p) for s, a, p in self._db.execute("SELECT sink, app_id, position FROM checkpoints")}

    def close(self) -> None:
        self._db.close()
