"""Batch: the rows of one source in the id range (after, upto], streamed as canonical Arrow record batches.

A batch is lazy: a reader thread pulls chunks from the source and runs the stage on them while the
sink writes the previous chunk (reading and writing overlap, memory stays at a few chunks). Rows the
stage rejects are collected and handed to `on_rejected` when the stream ends, *before* the sink
commits, so a committed batch always has its dead letters on disk.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterator

import pyarrow as pa

from uploader.schema import CANONICAL_SCHEMA

_END = object()
QUEUE_CHUNKS = 2


@dataclass(frozen=True)
class Lineage:
    """Constant columns of every row of one source."""

    project: str
    fleet_epoch: int
    source: str
    generation: str
    uploader_id: str
    city_fallback: str


@dataclass
class Rejection:
    source_id: int
    reason: str


@dataclass
class Batch:
    """Rows of `source_key` with after < source_id <= upto, for one sink (identified by its app id)."""

    app_id: str
    after: int
    upto: int
    lineage: Lineage
    chunks: Callable[[list[Rejection]], Iterator[pa.RecordBatch]]
    on_rejected: Callable[[list[Rejection]], None] = lambda rejections: None
    rows: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    source_error: BaseException | None = None

    @property
    def schema(self) -> pa.Schema:
        return CANONICAL_SCHEMA

    def stream(self) -> Iterator[pa.RecordBatch]:
        """The canonical record batches; the stage's rejects go to `on_rejected` before the last one is returned."""
        pending: queue.Queue = queue.Queue(maxsize=QUEUE_CHUNKS)
        stop = threading.Event()

        def put(item: object) -> bool:
            while not stop.is_set():
                try:
                    pending.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                for chunk in self.chunks(self.rejected):
                    if not put(chunk):
                        return
            except BaseException as exc:  # handed to the consuming thread, which re-raises it
                self.source_error = exc
            put(_END)

        reader = threading.Thread(target=produce, name=f"read-{self.lineage.source}", daemon=True)
        reader.start()
        try:
            while True:
                item = pending.get()
                if item is _END:
                    break
                self.rows += item.num_rows
                yield item
            if self.source_error is not None:
                raise self.source_error
            self.on_rejected(self.rejected)
        finally:
            stop.set()
            reader.join()

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(CANONICAL_SCHEMA, self.stream())
