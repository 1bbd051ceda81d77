"""The only writer of one sensor DB: lock, open-or-resume, batched inserts, checkpoints, clean close.

- Takes the single-writer lock before opening; never deletes or truncates an existing DB.
- A DB failing `PRAGMA quick_check` (or not a database at all) is moved aside to
  `sensor_data.db.corrupt-<utc>` (with its -wal) and a new one, with a new generation, is started.
- `seq` is the row id. It continues from the DB on a restart; for a new or replaced DB it continues
  from the sidecar `seq.hwm`, which reserves seq ranges *before* they are committed, so a seq is
  never reused even when the DB that held it is lost.
- A transient "database is locked" leaves the batch with the caller to retry later (`write` returns
  False); disk full is a ResourceLimitError.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
import uuid
from datetime import datetime, timezone
from itertools import repeat
from pathlib import Path

import sqlite_utils

from fleetcore.atomicfiles import write_atomic
from fleetcore.edge_db import FLEET_META_SQL, FleetEpochMismatchError, confined_db_path, read_fleet_epoch
from fleetcore.errors import ResourceLimitError, UsageError
from sensor_manager.simulator import db
from sensor_manager.simulator.identity import SensorIdentity
from sensor_manager.simulator.limits import open_files_message
from sensor_manager.simulator.lock import WriterLock
from sensor_manager.simulator.readings import Block

log = logging.getLogger(__name__)

DB_NAME = "sensor_data.db"
HWM_NAME = "seq.hwm"
MIN_RESERVATION = 10_000
WRITER_BUSY_TIMEOUT_MS = 50  # short: the runner retries with backoff instead of stalling other sensors
_CORRUPT_MARKERS = ("malformed", "not a database", "corrupt")


def _is_busy(exc: sqlite3.Error) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc))


def _is_corrupt(exc: sqlite3.Error) -> bool:
    return isinstance(exc, sqlite3.DatabaseError) and any(m in str(exc).lower() for m in _CORRUPT_MARKERS)


def _is_disk_full(exc: sqlite3.Error) -> bool:
    return "disk is full" in str(exc) or "database or disk is full" in str(exc)


class SensorWriter:
    def __init__(self, directory: Path, identity: SensorIdentity, *, cache_kib: int = 128,
                 wal_autocheckpoint_pages: int = 1000, fleet_epoch: int | None = None):
        self.directory = Path(directory)
        self.identity = identity
        self.fleet_epoch = fleet_epoch  # the plan's; recorded in a new DB, checked against an existing one
        self.path = self.directory / DB_NAME
        self.hwm_path = self.directory / HWM_NAME
        self.cache_kib = cache_kib
        self.wal_autocheckpoint_pages = wal_autocheckpoint_pages
        self.lock = WriterLock(self.directory / f"{DB_NAME}.lock")
        self.conn: sqlite3.Connection | None = None
        self.generation = ""
        self.identity_id = 0
        self.identity_since_seq: int | None = None  # first seq of the current identity, when known
        self.next_seq = 1
        self.reserved_seq = 0
        self.last_ts_ms: int | None = None
        self.moved_aside: list[Path] = []

    # --- opening -----------------------------------------------------------------------------

    def open(self) -> None:
        confined_db_path(self.path)  # before mkdir and the lock: a linked folder must not be followed either
        self.directory.mkdir(parents=True, exist_ok=True)
        self.lock.acquire()
        try:
            self._open_checked()
        except BaseException:
            self._close_connection()
            self.lock.release()
            raise

    def _open_checked(self) -> None:
        existed = self.path.exists() and self.path.stat().st_size > 0
        try:
            self._connect()
            if existed:
                self._check_integrity()
            self._ensure_schema()
        except sqlite3.DatabaseError as exc:
            if not _is_corrupt(exc):
                raise
            self._move_aside(str(exc))
            self._connect()
            self._ensure_schema()
        self._resume_seq()
        self.identity_since_seq = self._identity_start()

    def _connect(self) -> None:
        try:
            conn = sqlite3.connect(confined_db_path(self.path), isolation_level=None, check_same_thread=False,
                                   timeout=WRITER_BUSY_TIMEOUT_MS / 1000)
        except sqlite3.OperationalError as exc:
            if "unable to open" in str(exc) and _fd_exhausted():
                raise ResourceLimitError(open_files_message()) from None
            raise
        self.conn = conn
        conn.execute(f"PRAGMA busy_timeout = {WRITER_BUSY_TIMEOUT_MS}")
        # No fsyncs while creating: the schema is one transaction (atomic against a crash), and a DB
        # lost to power failure before its first reading is simply created again.
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA cache_size = -{int(self.cache_kib)}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {int(self.wal_autocheckpoint_pages)}")
        conn.execute(f"PRAGMA journal_size_limit = {int(self.wal_autocheckpoint_pages) * 4096}")

    def _check_integrity(self) -> None:
        result = self.connection.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise sqlite3.DatabaseError(f"quick_check failed (database disk image is malformed): {result}")

    def _ensure_schema(self) -> None:
        conn = self.connection
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        introspect = sqlite_utils.Database(conn)
        tables = set(introspect.table_names()) | set(introspect.view_names())
        if version == 0 and not tables:
            self._create_schema()
        elif version == 1 and "readings" in tables:
            self._migrate_v1()
        elif version != db.SCHEMA_VERSION or "readings" not in tables:
            raise UsageError(
                f"{self.path}: not a sensor-manager v{db.SCHEMA_VERSION} database (user_version={version}); "
                "move it out of the data directory and start again"
            )
        meta = conn.execute("SELECT sensor_id, generation FROM sensor_meta LIMIT 1").fetchone()
        if meta[0] != self.identity.sensor_id:
            raise UsageError(f"{self.path}: belongs to sensor {meta[0]}, not {self.identity.sensor_id}; check --data-dir")
        self.generation = meta[1]
        self._check_fleet_epoch()
        self.identity_id = self._identity_row()
        conn.execute("PRAGMA synchronous = NORMAL")

    def _create_schema(self) -> None:
        created = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        self.connection.executescript(
            f"BEGIN;{db.SCHEMA_SQL}"
            f"PRAGMA user_version = {db.SCHEMA_VERSION};"
            "COMMIT;"
        )
        self.connection.execute(
            "INSERT INTO sensor_meta (sensor_id, schema_version, created_at, generation) VALUES (?, ?, ?, ?)",
            (self.identity.sensor_id, db.SCHEMA_VERSION, created, str(uuid.uuid4())),
        )

    def _migrate_v1(self) -> None:
        """Add the fault columns to a version 1 DB: no row is rewritten, the rows it holds read NULL."""
        self.connection.executescript(f"BEGIN;{db.MIGRATE_V1_SQL}PRAGMA user_version = {db.SCHEMA_VERSION};COMMIT;")
        log.info("Sensor DB upgraded to schema version %d. path=%s", db.SCHEMA_VERSION, self.path)

    def _check_fleet_epoch(self) -> None:
        """Refuse to append to another epoch's DB; record the plan's epoch in a DB that has none yet."""
        if self.fleet_epoch is None:
            return
        recorded = read_fleet_epoch(self.connection)
        if recorded is None:
            self.connection.execute(FLEET_META_SQL)
            self.connection.execute("INSERT INTO fleet_meta (fleet_epoch) VALUES (?)", (self.fleet_epoch,))
        elif recorded != self.fleet_epoch:
            raise FleetEpochMismatchError(self.path, recorded, self.fleet_epoch)

    def _identity_row(self) -> int:
        columns = db.IDENTITY_COLUMNS
        values = self.identity.column_values(columns)
        where = " AND ".join(f"{c} IS ?" for c in columns)
        row = self.connection.execute(f"SELECT identity_id FROM sensor_identity WHERE {where} ORDER BY identity_id DESC LIMIT 1",
                                values).fetchone()
        if row:
            return row[0]
        cursor = self.connection.execute(
            f"INSERT INTO sensor_identity ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", values
        )
        assert cursor.lastrowid is not None  # a row was inserted
        return cursor.lastrowid

    def _identity_start(self) -> int | None:
        """The seq from which rows carry the current identity, when it changed since the last row (else unknown)."""
        row = self.connection.execute("SELECT identity_id FROM readings ORDER BY seq DESC LIMIT 1").fetchone()
        if row is not None and row[0] == self.identity_id:
            return None
        return self.next_seq

    def switch_identity(self, identity: SensorIdentity) -> None:
        """Write every later row with `identity` (a firmware rollout); `identity_since_seq` says from where."""
        self.identity = identity
        self.identity_id = self._identity_row()
        self.identity_since_seq = self.next_seq

    def _resume_seq(self) -> None:
        high = db.high_water(self.connection)
        self.last_ts_ms = db.last_reading_ms(self.connection)
        sidecar = self._read_sidecar()
        if sidecar.get("generation") == self.generation:
            self.next_seq = high.max_seq + 1  # a plain restart: no gap
        else:
            self.next_seq = max(high.max_seq, int(sidecar.get("reserved_seq", 0))) + 1
        same_generation = sidecar.get("generation") == self.generation
        self.reserved_seq = int(sidecar.get("reserved_seq", 0)) if same_generation else self.next_seq - 1
        self._reserve(self.next_seq)

    def _move_aside(self, reason: str) -> None:
        self._close_connection()
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        target = self.path.with_name(f"{DB_NAME}.corrupt-{stamp}")
        os.replace(self.path, target)
        for suffix in ("-wal", "-shm"):
            companion = self.path.with_name(DB_NAME + suffix)
            if companion.exists():
                os.replace(companion, target.with_name(target.name + suffix))
        self.moved_aside.append(target)
        log.error("Corrupt sensor DB moved aside; starting a new generation. path=%s moved_to=%s error=%s",
                  self.path, target.name, reason)

    # --- seq reservations ----------------------------------------------------------------------

    def _read_sidecar(self) -> dict:
        try:
            return json.loads(self.hwm_path.read_text())
        except (OSError, ValueError):
            return {}

    def _reserve(self, through_seq: int) -> None:
        """Record in the sidecar that seqs up to beyond `through_seq` may be in use (before using them)."""
        if through_seq <= self.reserved_seq:
            return
        reserved = through_seq + max(MIN_RESERVATION, 64 * (through_seq - self.next_seq + 1))
        write_atomic(self.hwm_path, json.dumps({"generation": self.generation, "reserved_seq": reserved,
                                                "sensor_id": self.identity.sensor_id}))
        self.reserved_seq = reserved

    # --- writing -------------------------------------------------------------------------------

    def write(self, block: Block) -> bool:
        """Insert a block in one transaction. False when the DB is busy (the caller retries later)."""
        n = len(block)
        if n == 0:
            return True
        first = self.next_seq
        self._reserve(first + n - 1)
        columns = [range(first, first + n), block.ts_ms.tolist(), block.utc_offset_min.tolist(),
                   repeat(self.identity_id, n), *block.values.T.tolist(), block.anomaly.tolist()]
        sql = db.INSERT_READING_SQL
        if block.fault is not None and block.duplicate_of is not None:
            sql = db.INSERT_FAULTY_READING_SQL
            columns += [[code or None for code in block.fault.tolist()],
                        [first + row if row >= 0 else None for row in block.duplicate_of.tolist()]]
        rows = zip(*columns, strict=True)
        conn = self.connection
        try:
            conn.execute("BEGIN")
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if _is_busy(exc):
                return False
            if _is_disk_full(exc):
                raise ResourceLimitError(f"{self.path}: disk full; free space under {self.directory.parent}") from None
            if "unable to open" in str(exc) and _fd_exhausted():
                raise ResourceLimitError(open_files_message()) from None
            if _is_corrupt(exc):
                self._move_aside(str(exc))
                self._connect()
                self._ensure_schema()
                self._resume_seq()
                return self.write(block)
            raise
        self.next_seq = first + n
        self.last_ts_ms = int(block.ts_ms[-1])
        return True

    def checkpoint(self, mode: str = "PASSIVE") -> None:
        try:
            self.connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise

    def close(self) -> None:
        """TRUNCATE-checkpoint the WAL, close, release the lock."""
        try:
            if self.conn is not None:
                self.checkpoint("TRUNCATE")
        finally:
            self._close_connection()
            self.lock.release()

    @property
    def connection(self) -> sqlite3.Connection:
        """The open connection; using a writer that is not open fails here, by name."""
        if self.conn is None:
            raise RuntimeError(f"{self.path}: writer is not open")
        return self.conn

    def _close_connection(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    @property
    def last_seq(self) -> int:
        return self.next_seq - 1


def _fd_exhausted() -> bool:
    try:
        fd = os.open(os.devnull, os.O_RDONLY)
    except OSError as exc:
        return exc.errno == errno.EMFILE
    os.close(fd)
    return False
