"""Read-only keyset reader of one sensor DB (`sensor_data.db`), straight into Arrow.

The DB is the sensor's buffer: it is opened `mode=ro` (`PRAGMA query_only`), read in id order with
keyset pagination (`id > after AND id <= upto`), never indexed, modified or deleted. Bulk reads use the
ADBC SQLite driver (faster than stdlib `sqlite3` → Python objects → Arrow; see
benchmarks/uploader_throughput.py); small metadata queries use stdlib `sqlite3`.

Every batch comes out in one shape (`source_id`, `ts_us` = integer microseconds since the epoch, the
reading columns, `seq`, `bad_metrics`), by one of two paths:

- fast: a plain SELECT (column affinity already gives one type per column), timestamps parsed by
  Arrow (ISO text with an offset, naive text as UTC, or REAL epoch seconds);
- strict, when the fast path meets a value of the wrong type (ADBC reports a type mismatch) or a
  timestamp Arrow cannot parse: type discipline in SQL. Text columns are CAST to TEXT, numbers kept
  only when SQLite stored a number (a text in a metric column reads as null and sets a bit in
  `bad_metrics`, so the stage can dead-letter the row rather than zero-fill it), and timestamps are
  parsed by SQLite's julianday() (offset honoured; naive text as UTC or, if configured, local time).

A typed first row is prepended to both because ADBC infers column types from the first rows it sees
(an all-null column would otherwise become int64 and fail on the first string).
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import adbc_driver_sqlite.dbapi as adbc
import pyarrow as pa
import pyarrow.compute as pc

from fleetcore.edge_db import UnsafeEdgePathError, confined_db_path, read_fleet_epoch
from uploader.schema import BOOL_COLUMNS, FLOAT_COLUMNS, INT_COLUMNS, METRICS, TEXT_COLUMNS
from uploader.sources.generations import Shape

DB_NAME = "sensor_data.db"
BUSY_TIMEOUT_MS = 5_000
CHUNK_ROWS = 8_192
NOT_READY_MESSAGES = ("no such table",)


class SourceUnreadableError(Exception):
    """The DB cannot be read (corrupt, not a database, unreadable, changed under the reader)."""


class SourceTypeMismatch(Exception):
    """A value of another type than the column's first rows: the fast path hands over to the strict one."""


class SourceNotReadyError(Exception):
    """The DB exists but has no readings table or no rows yet to derive its generation from."""


def _uri(path: Path, immutable: bool = False) -> str:
    extra = "&immutable=1" if immutable else ""
    return f"file:{quote(str(path))}?mode=ro{extra}"


def needs_immutable_open(path: Path) -> bool:
    """A WAL DB on a read-only directory without its -shm cannot be opened `mode=ro`.

    Then no writer is live (a writer keeps -shm), and without a -wal there is nothing SQLite would
    have to merge: `immutable=1` reads the main file safely.
    """
    shm = Path(f"{path}-shm")
    wal = Path(f"{path}-wal")
    return not shm.exists() and not wal.exists() and not os.access(path.parent, os.W_OK)


def timestamp_sql(naive_local: bool) -> str:
    """Microseconds since the epoch from REAL/INTEGER epoch seconds or ISO-8601 text; NULL if unparseable."""
    text_modifier = (
        "CASE WHEN timestamp GLOB '*[+-][0-9][0-9]:[0-9][0-9]' OR timestamp GLOB '*Z' THEN '+0 seconds' ELSE 'utc' END"
        if naive_local else "'+0 seconds'"
    )
    return (
        "CASE typeof(timestamp)"
        " WHEN 'real' THEN CAST(round(timestamp * 1000000.0) AS INTEGER)"
        " WHEN 'integer' THEN timestamp * 1000000"
        " WHEN 'text' THEN CASE WHEN timestamp GLOB '[0-9]*' AND timestamp NOT GLOB '*[^0-9.]*'"  # epoch seconds as text
        "  THEN CAST(round(CAST(timestamp AS REAL) * 1000000.0) AS INTEGER)"
        f"  ELSE CAST(round((julianday(timestamp, {text_modifier}) - 2440587.5) * 86400000.0) AS INTEGER) * 1000 END"
        " END"
    )


def _float_sql(column: str, shape: Shape) -> str:
    if not shape.has(column):
        return f"NULL AS {column}"
    return f"CASE WHEN typeof({column}) IN ('real', 'integer') THEN CAST({column} AS REAL) END AS {column}"


def _int_sql(column: str, shape: Shape) -> str:
    if not shape.has(column):
        return f"NULL AS {column}"
    return f"CASE WHEN typeof({column}) IN ('real', 'integer') THEN CAST({column} AS INTEGER) END AS {column}"


def _bool_sql(column: str, shape: Shape) -> str:
    if not shape.has(column):
        return f"NULL AS {column}"
    return (f"CASE WHEN {column} IN (1, '1', 'true', 'True', 'TRUE') THEN 1"
            f" WHEN {column} IN (0, '0', 'false', 'False', 'FALSE') THEN 0 END AS {column}")


def _text_sql(column: str, shape: Shape) -> str:
    return f"CAST({column} AS TEXT) AS {column}" if shape.has(column) else f"NULL AS {column}"


def _bad_metrics_sql(shape: Shape) -> str:
    terms = [f"((typeof({m}) IN ('text', 'blob')) << {bit})" for bit, m in enumerate(METRICS) if shape.has(m)]
    return " | ".join(terms) if terms else "0"


OUTPUT_TYPES = [pa.int64(), pa.int64(), *(pa.string() for _ in TEXT_COLUMNS), *(pa.float64() for _ in FLOAT_COLUMNS),
                *(pa.int64() for _ in INT_COLUMNS), *(pa.int64() for _ in BOOL_COLUMNS), pa.int64(), pa.int64()]
OUTPUT_NAMES = ["source_id", "ts_us", *TEXT_COLUMNS, *FLOAT_COLUMNS, *INT_COLUMNS, *BOOL_COLUMNS, "seq", "bad_metrics"]


def _sentinel(timestamp_value: str) -> str:
    values = ["-1", timestamp_value, *("''" for _ in TEXT_COLUMNS), *("0.0" for _ in FLOAT_COLUMNS),
              *("0" for _ in INT_COLUMNS), *("0" for _ in BOOL_COLUMNS), "0", "0"]
    return ", ".join(f"{value} AS {name}" for value, name in zip(values, OUTPUT_NAMES, strict=True))


def fast_select_sql(shape: Shape, timestamp_is_real: bool) -> str:
    """The plain SELECT: raw timestamp, columns as stored (NULL where the shape lacks them)."""
    def plain(column: str) -> str:
        return f"{column}" if shape.has(column) else f"NULL AS {column}"

    columns = ["id AS source_id", "timestamp AS ts_us", *(plain(c) for c in TEXT_COLUMNS), *(plain(c) for c in FLOAT_COLUMNS),
               *(plain(c) for c in INT_COLUMNS), *(plain(c) for c in BOOL_COLUMNS),
               "seq" if shape.has("seq") else "id AS seq", "0 AS bad_metrics"]
    body = f"SELECT {', '.join(columns)} FROM sensor_readings WHERE id > ? AND id <= ? ORDER BY id"
    return f"SELECT {_sentinel('0.0' if timestamp_is_real else chr(39) * 2)} UNION ALL SELECT * FROM ({body})"


def parse_timestamps(values: pa.Array) -> pa.Array | None:
    """Integer microseconds since the epoch from the raw column, or None when Arrow cannot parse all of it."""
    if pa.types.is_floating(values.type):
        return pc.cast(pc.round(pc.multiply(values, 1_000_000.0)), pa.int64())
    if pa.types.is_integer(values.type):
        return pc.multiply(values, 1_000_000)
    try:
        parsed = pc.cast(values, pa.timestamp("us", tz="UTC"))
    except pa.ArrowInvalid:
        try:
            parsed = pc.cast(pc.cast(values, pa.timestamp("us")), pa.timestamp("us", tz="UTC"))  # naive: UTC
        except pa.ArrowInvalid:
            return None
    return parsed.view(pa.int64())


def select_sql(shape: Shape, naive_local: bool) -> str:
    """The canonicalising SELECT for one shape, with a typed sentinel row (source_id -1) first."""
    seq = "CASE WHEN typeof(seq) = 'integer' THEN seq END" if shape.has("seq") else "id"
    columns = [
        "id AS source_id",
        f"{timestamp_sql(naive_local)} AS ts_us",
        *(_text_sql(c, shape) for c in TEXT_COLUMNS),
        *(_float_sql(c, shape) for c in FLOAT_COLUMNS),
        *(_int_sql(c, shape) for c in INT_COLUMNS),
        *(_bool_sql(c, shape) for c in BOOL_COLUMNS),
        f"{seq} AS seq",
        f"{_bad_metrics_sql(shape)} AS bad_metrics",
    ]
    body = f"SELECT {', '.join(columns)} FROM sensor_readings WHERE id > ? AND id <= ? ORDER BY id"
    return f"SELECT {_sentinel('0')} UNION ALL SELECT * FROM ({body})"


@dataclass(frozen=True)
class SourceKey:
    """A source is one generation of one DB file: (path relative to the data root, generation)."""

    path: str
    generation: str

    def __str__(self) -> str:
        return f"{self.path}@{self.generation}"


def _is_not_ready(exc: sqlite3.Error) -> bool:
    return any(message in str(exc) for message in NOT_READY_MESSAGES)


class SqliteSource:
    """One open DB generation. `read(after, upto)` streams Arrow record batches of rows in (after, upto]."""

    def __init__(self, path: Path, data_root: Path, *, naive_local: bool = False):
        self.path = path
        self._bulk: adbc.AdbcSqliteConnection | None = None
        self._meta: sqlite3.Connection | None = None
        self.is_retired = False
        self.relpath = path.relative_to(data_root).as_posix() if path.is_relative_to(data_root) else path.name
        try:
            confined_db_path(path, data_root)
        except UnsafeEdgePathError as exc:
            raise SourceUnreadableError(str(exc)) from None
        self.immutable = needs_immutable_open(path)
        try:
            self.inode = os.stat(path).st_ino  # before opening: a replacement after this is a new source next cycle

            self._meta = sqlite3.connect(_uri(path, self.immutable), uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                                         check_same_thread=False)
            self._meta.execute("PRAGMA query_only = 1")
            self.shape = self._read_shape()
            self.generation = self._read_generation()
            self.fleet_epoch = read_fleet_epoch(self._meta)  # None: a DB that does not record it
        except FileNotFoundError as exc:
            raise SourceNotReadyError(f"{path}: {exc.strerror}") from None
        except sqlite3.Error as exc:
            self.close()
            if _is_not_ready(exc):
                raise SourceNotReadyError(f"{path}: {exc}") from None
            raise SourceUnreadableError(f"{path}: {exc}") from None
        self.key = SourceKey(self.relpath, self.generation)
        self.naive_local = naive_local
        self._prepare()

    def _prepare(self) -> None:
        """The two SELECTs for the DB's shape as of now (`PRAGMA schema_version` says when it changes)."""
        self.schema_version = self._db.execute("PRAGMA schema_version").fetchone()[0]
        self.shape = self._read_shape()
        self._strict_sql = select_sql(self.shape, self.naive_local)
        self._fast_sql = fast_select_sql(self.shape, self._timestamp_is_real())

    def _follow_schema(self) -> None:
        """A sensor that upgrades its DB in place (schema v1 → v2 adds the fault columns) is read in its new shape.

        Checked as a read starts: every row it reads was committed before, so after any upgrade."""
        try:
            if self._db.execute("PRAGMA schema_version").fetchone()[0] != self.schema_version:
                self._prepare()
        except sqlite3.Error as exc:
            raise SourceUnreadableError(f"{self.path}: {exc}") from None

    @property
    def _db(self) -> sqlite3.Connection:
        if self._meta is None:
            raise SourceUnreadableError(f"{self.path}: read after close")
        return self._meta

    def _read_shape(self) -> Shape:
        columns = frozenset(row[1] for row in self._db.execute("PRAGMA table_info(sensor_readings)"))
        if not columns:
            raise SourceNotReadyError(f"{self.path}: no sensor_readings table yet")
        has_meta = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'sensor_meta' AND type IN ('table', 'view')").fetchone() is not None
        return Shape(columns, has_meta)

    def _timestamp_is_real(self) -> bool:
        declared = {row[1]: (row[2] or "").upper() for row in self._db.execute("PRAGMA table_info(sensor_readings)")}
        return declared.get("timestamp", "") in ("REAL", "FLOAT", "DOUBLE", "NUMERIC")

    def _read_generation(self) -> str:
        if self.shape.has_meta:
            row = self._db.execute("SELECT generation FROM sensor_meta WHERE generation IS NOT NULL LIMIT 1").fetchone()
            if row and row[0]:
                return str(row[0])
        first = self._db.execute("SELECT id, timestamp, sensor_id FROM sensor_readings ORDER BY id LIMIT 1").fetchone()
        if first is None:
            raise SourceNotReadyError(f"{self.path}: no readings yet")
        digest = hashlib.sha256("\x00".join(str(part) for part in first).encode()).hexdigest()
        return f"sha256-{digest[:16]}"

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        for attempt in range(5):
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or attempt == 4:
                    raise SourceUnreadableError(f"{self.path}: {exc}") from None
                time.sleep(0.1 * (attempt + 1))
            except sqlite3.DatabaseError as exc:
                raise SourceUnreadableError(f"{self.path}: {exc}") from None
        return []

    def sensor_id(self) -> str | None:
        """The sensor this DB belongs to (sensor_meta, else its first row)."""
        if self.shape.has_meta:
            row = self._query("SELECT sensor_id FROM sensor_meta WHERE sensor_id IS NOT NULL LIMIT 1")
            if row:
                return str(row[0][0])
        row = self._query("SELECT sensor_id FROM sensor_readings ORDER BY id LIMIT 1")
        return str(row[0][0]) if row and row[0][0] is not None else None

    def end_id(self) -> int:
        """The last row id now (0 when empty)."""
        row = self._query("SELECT id FROM sensor_readings ORDER BY id DESC LIMIT 1")  # an index seek, also through a view
        return int(row[0][0]) if row else 0

    def plan_upto(self, after: int, end: int, limit: int) -> int:
        """The id that closes a batch of at most `limit` rows after `after`, not beyond `end`."""
        row = self._query("SELECT id FROM sensor_readings WHERE id > ? AND id <= ? ORDER BY id LIMIT 1 OFFSET ?",
                          (after, end, limit - 1))
        return int(row[0][0]) if row else end

    def seq_at(self, source_id: int) -> int | None:
        """The seq of the last row at or before `source_id` (a stage switch's boundary), or None before the first row."""
        column = "seq" if self.shape.has("seq") else "id"
        row = self._query(f"SELECT {column} FROM sensor_readings WHERE id <= ? ORDER BY id DESC LIMIT 1", (source_id,))
        return int(row[0][0]) if row and row[0][0] is not None else None

    def timestamp_after(self, after: int) -> float | None:
        """Epoch seconds of the first row after `after` (for lag), or None."""
        row = self._query(f"SELECT {timestamp_sql(False)} FROM sensor_readings WHERE id > ? ORDER BY id LIMIT 1", (after,))
        return row[0][0] / 1e6 if row and row[0][0] is not None else None

    def raw_rows(self, ids: list[int]) -> dict[int, dict]:
        """The rows with these ids exactly as stored (for dead letters)."""
        found: dict[int, dict] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            cursor = self._db.execute(
                f"SELECT * FROM sensor_readings WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            names = [d[0] for d in cursor.description]
            for row in cursor.fetchall():
                record = {n: (v.hex() if isinstance(v, bytes) else v) for n, v in zip(names, row, strict=True)}
                found[int(record["id"])] = record
        return found

    def read(self, after: int, upto: int, chunk_rows: int = CHUNK_ROWS) -> Iterator[pa.RecordBatch]:
        """Record batches of rows with after < id <= upto, in id order, in the one output shape.

        Raises SourceUnreadableError when the rows end before `upto` (a row the range promised is not
        there: the file changed under the reader), so a sink never confirms rows it did not get.
        """
        self._follow_schema()
        last = after
        for batch in self._read_rows(after, upto, chunk_rows):
            last = batch.column(0)[-1].as_py()
            yield batch
        if last != upto:
            raise SourceUnreadableError(f"{self.path}: read stopped at id {last}, expected {upto}; the file changed")

    def _read_rows(self, after: int, upto: int, chunk_rows: int) -> Iterator[pa.RecordBatch]:
        last = after
        if self.is_retired:
            yield from self._stream_stdlib(self._strict_sql, last, upto, chunk_rows)
            return
        if not self.naive_local:
            try:
                for batch in self._stream(self._fast_sql, last, upto, chunk_rows):
                    converted = self._from_fast(batch)
                    if converted is None:
                        break
                    last = converted.column(0)[-1].as_py()
                    yield converted
                else:
                    return
            except SourceTypeMismatch:
                pass
        yield from self._stream(self._strict_sql, last, upto, chunk_rows)

    def _from_fast(self, batch: pa.RecordBatch) -> pa.RecordBatch | None:
        ts_us = parse_timestamps(batch.column(1))
        if ts_us is None:
            return None
        return pa.RecordBatch.from_arrays([batch.column(0), ts_us, *batch.columns[2:]], names=OUTPUT_NAMES)

    def _stream_stdlib(self, sql: str, after: int, upto: int, chunk_rows: int) -> Iterator[pa.RecordBatch]:
        """The strict SELECT through the long-open stdlib connection: it still sees a replaced file's WAL."""
        try:
            cursor = self._db.execute(sql, (after, upto))
            try:
                cursor.fetchone()  # the typed sentinel row
                while rows := cursor.fetchmany(chunk_rows):
                    columns = list(zip(*rows, strict=True))
                    yield pa.RecordBatch.from_arrays([pa.array(c, t) for c, t in zip(columns, OUTPUT_TYPES, strict=True)],
                                                     names=OUTPUT_NAMES)
            finally:
                cursor.close()  # an abandoned cursor would hold its read transaction
        except sqlite3.Error as exc:
            raise SourceUnreadableError(f"{self.path}: {exc}") from None

    def _stream(self, sql: str, after: int, upto: int, chunk_rows: int) -> Iterator[pa.RecordBatch]:
        try:
            if self._bulk is None:
                # autocommit: each query its own short read transaction (else the DB-API default holds one
                # snapshot open, reads stale rows and pins the sensor's WAL)
                self._bulk = adbc.connect(_uri(self.path, self.immutable), autocommit=True)
            cursor = self._bulk.cursor()
            try:
                cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(chunk_rows)})
                cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                cursor.execute(sql, (after, upto))
                first = True
                for batch in cursor.fetch_record_batch():
                    if first:
                        batch, first = batch.slice(1), False  # the typed sentinel row
                    if batch.num_rows:
                        yield batch
            finally:
                cursor.close()
        except (adbc.Error, OSError) as exc:
            self._close_bulk()
            if "Type mismatch" in str(exc):
                raise SourceTypeMismatch(str(exc)) from None
            raise SourceUnreadableError(f"{self.path}: {exc}") from None

    def retire(self) -> None:
        """The path now names a newer generation: read what is left of this one through the stdlib connection.

        (The ADBC connection was seen to lose the WAL of an unlinked file, the stdlib one keeps it.)
        """
        self.is_retired = True
        self._close_bulk()

    def is_replaced(self) -> bool:
        """True when the path now names another file (the sensor started a new DB generation)."""
        try:
            return os.stat(self.path).st_ino != self.inode
        except FileNotFoundError:
            return True

    def is_reset_in_place(self) -> bool:
        """True when the same file now holds another generation (its table was recreated, ids restart)."""
        try:
            return self._read_generation() != self.generation
        except SourceNotReadyError:
            return True  # the table is empty again
        except sqlite3.Error:
            return False  # busy or unreadable: unknown is not a reset; the next read reports it

    def _close_bulk(self) -> None:
        if self._bulk is not None:
            try:
                self._bulk.close()
            except Exception:  # noqa: BLE001 - closing a broken connection must not mask the first error
                pass
            self._bulk = None

    def close(self) -> None:
        self._close_bulk()
        if self._meta is not None:
            self._meta.close()
            self._meta = None
