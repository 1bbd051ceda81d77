"""The `sanitized` stage: canonical rows with what identifies a device or pins a place taken out.

- latitude/longitude rounded to `uploader.sanitized.coordinate_decimals` (default 3, about 110 m), and
  any longer decimal left in `location` cut to the same precision (raw already moves "City (lat, lon)"
  coordinates out of it);
- serial_number and instance_id replaced by a keyed hash (HMAC-SHA256, first 16 hex digits): stable, so
  rows of one device still group, but not reversible without the key. The key is a secret file
  (`uploader.sanitized.hash_key_file`, default `<state>/checkpoints/sanitize-hash.key`, made once, 0400);
- the columns in `uploader.sanitized.drop` emptied (null).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fleetcore.errors import ConfigError
from uploader.batch import Lineage, Rejection
from uploader.stages.raw import RawStage

HASHED = ("serial_number", "instance_id")
# Beside the checkpoints: every uploader of a project (and each container, which mounts that directory) shares it.
KEY_FILE = Path("checkpoints") / "sanitize-hash.key"


def read_hash_key(path: Path) -> bytes:
    """The hash key in `path`, made (random, owner-read-only) when it does not exist yet.

    Made under a temporary name and linked into place, so uploaders starting together agree on one key
    and none reads a half-written file."""
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fresh = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
            descriptor = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
            with os.fdopen(descriptor, "w") as key_file:
                key_file.write(secrets.token_hex(32) + "\n")
                key_file.flush()
                os.fsync(key_file.fileno())
            try:
                os.link(fresh, path)
            except FileExistsError:
                pass  # another uploader made it first: use theirs
            finally:
                fresh.unlink()
        except OSError as exc:
            raise ConfigError(f"uploader.sanitized.hash_key_file {path}: cannot create it ({exc.strerror})") from None
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"uploader.sanitized.hash_key_file {path}: cannot read it ({exc.strerror})") from None
    if len(key) < 16:
        raise ConfigError(f"uploader.sanitized.hash_key_file {path}: a key needs at least 16 bytes")
    return key


def keyed_hash(values: pa.Array, key: bytes) -> pa.Array:
    """HMAC of each value (once per distinct value); nulls stay null."""
    encoded = pc.dictionary_encode(values)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    digests = [hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:16]
               for value in encoded.dictionary.to_pylist()]
    return pa.array(digests, pa.string()).take(encoded.indices)


def coarsen(values: pa.Array, decimals: int) -> pa.Array:
    """Rounded to `decimals` (a division by 10^n, so each value prints with at most n decimals)."""
    scale = 10.0 ** decimals
    rounded = np.round(values.to_numpy(zero_copy_only=False) * scale) / scale
    return pa.array(rounded, pa.float64(), mask=values.is_null().to_numpy(zero_copy_only=False))


class SanitizedStage(RawStage):
    name = "sanitized"

    def __init__(self, key: bytes, coordinate_decimals: int = 3, drop: tuple[str, ...] = ()):
        self.key = key
        self.decimals = coordinate_decimals
        self.drop = drop

    def apply(self, chunk: pa.RecordBatch, lineage: Lineage) -> tuple[pa.RecordBatch | None, list[Rejection]]:
        kept, rejected = super().apply(chunk, lineage)
        return (None if kept is None else self._sanitized(kept)), rejected

    def _sanitized(self, rows: pa.RecordBatch) -> pa.RecordBatch:
        columns = {name: rows.column(name) for name in rows.schema.names}
        for name in ("latitude", "longitude"):
            columns[name] = coarsen(columns[name], self.decimals)
        columns["location"] = pc.replace_substring_regex(columns["location"], rf"(\d+\.\d{{{self.decimals}}})\d+", r"\1")
        if self.decimals == 0:
            columns["location"] = pc.replace_substring_regex(columns["location"], r"(\d+)\.\d+", r"\1")
        for name in HASHED:
            columns[name] = keyed_hash(columns[name], self.key)
        for name in self.drop:
            columns[name] = pa.nulls(rows.num_rows, rows.schema.field(name).type)
        return pa.RecordBatch.from_arrays(list(columns.values()), schema=rows.schema)
