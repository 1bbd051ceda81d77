"""Batch: the rows of one or more sources, each a `Part` with its own id range (after, upto] and app id,
streamed as canonical Arrow record batches.

A sink delivers a batch in one step (the Delta sink: one commit carrying one app transaction per part),
so a cycle ships the new rows of all its sources together, bounded by the sink's batch size. A part is
lazy: a reader thread pulls chunks from its source and runs the stage on them while the sink writes the
previous chunk (reading and writing overlap, memory stays at a few chunks). Rows the stage rejects are
collected and handed to the part's `on_rejected` when its stream ends, *before* the sink commits, so a
committed batch always has its dead letters on disk.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

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
class Part:
    """Rows of one source (identified by its app id) with after < source_id <= upto."""

    app_id: str
    after: int
    upto: int
    lineage: Lineage
    chunks: Callable[[list[Rejection]], Iterator[pa.RecordBatch]]
    on_rejected: Callable[[list[Rejection]], None] = lambda rejections: None
    rows: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    source_error: BaseException | None = None

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


@dataclass
class Batch:
    """One delivery: parts of distinct sources, written (and confirmed or refused) together."""

    parts: list[Part]
    schema: pa.Schema = CANONICAL_SCHEMA  # the stage's record: canonical readings, or aggregates

    def __post_init__(self) -> None:
        app_ids = [part.app_id for part in self.parts]
        if not app_ids or len(set(app_ids)) != len(app_ids):
            raise ValueError(f"a batch needs at least one part and one part per source: {app_ids}")

    @classmethod
    def of(cls, app_id: str, after: int, upto: int, lineage: Lineage,
           chunks: Callable[[list[Rejection]], Iterator[pa.RecordBatch]],
           on_rejected: Callable[[list[Rejection]], None] = lambda rejections: None) -> Batch:
        """A batch of one source's rows."""
        return cls([Part(app_id, after, upto, lineage, chunks, on_rejected)])

    @property
    def rows(self) -> int:
        return sum(part.rows for part in self.parts)

    @property
    def rejected(self) -> list[Rejection]:
        return [rejection for part in self.parts for rejection in part.rejected]

    @property
    def source_error(self) -> BaseException | None:
        """The first failure of a source while its part was streamed (not the sink's fault)."""
        return next((part.source_error for part in self.parts if part.source_error is not None), None)

    def stream(self, parts: Iterable[Part] | None = None) -> Iterator[pa.RecordBatch]:
        """The record batches of `parts` (default: all), one part after the other."""
        for part in self.parts if parts is None else parts:
            yield from part.stream()

    def reader(self, parts: Iterable[Part] | None = None) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self.schema, self.stream(parts))
