"""The dead-letter store: rows a stage or sink refused, with the reason, under `<state root>/deadletter/<sink>/`.

One Parquet file per (source, first rejected id) of a batch, written atomically before the batch is
committed. The name is deterministic, so a batch replayed after a crash rewrites the same file (with the
same or more rows) instead of adding a second copy.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from fleetcore.atomicfiles import replacing
from uploader.batch import Rejection
from uploader.schema import DEADLETTER_SCHEMA


class DeadLetterStore:
    def __init__(self, root: Path):
        self.root = root

    def directory(self, sink: str) -> Path:
        return self.root / sink

    def write(self, sink: str, *, source: str, generation: str, stage: str,
              rejections: list[Rejection], raw_rows: dict[int, dict]) -> Path | None:
        """Store the rejected rows (their stored values as JSON) and return the file, or None when there are none."""
        if not rejections:
            return None
        first = min(r.source_id for r in rejections)
        digest = hashlib.sha256(f"{source}@{generation}".encode()).hexdigest()[:16]
        path = self.directory(sink) / f"{digest}-{first:012d}.parquet"
        now = datetime.now(timezone.utc)
        table = pa.Table.from_pylist([
            {"source": source, "generation": generation, "source_id": r.source_id, "reason": r.reason,
             "row_json": json.dumps(raw_rows.get(r.source_id), default=str), "rejected_at": now,
             "stage": stage, "sink": sink}
            for r in rejections
        ], schema=DEADLETTER_SCHEMA)
        with replacing(path) as handle:
            pq.write_table(table, handle)
        return path

    def count(self, sink: str) -> int:
        """Rows in the sink's dead-letter files."""
        directory = self.directory(sink)
        if not directory.is_dir():
            return 0
        return sum(pq.ParquetFile(p).metadata.num_rows for p in directory.glob("*.parquet"))

    def read(self, sink: str) -> pa.Table:
        files = sorted(self.directory(sink).glob("*.parquet"))
        if not files:
            return DEADLETTER_SCHEMA.empty_table()
        return pa.concat_tables(pq.read_table(p, schema=DEADLETTER_SCHEMA) for p in files)
