"""The sink contract: `check()`, `write(batch)` → Delivered | Retry | Rejected, `resume_from(app_id)`.

A batch holds one part per source (its app id and id range); the outcome covers the whole batch: a
sink delivers all its parts or none. The pipeline moves a sink's checkpoint for each source only on
Delivered (to `Delivered.positions[app_id]`, which may be below the part's end when the sink already
held some of it, and below the part's start when the sink lost rows: the pipeline then ships again from
there). Retry goes through the backoff policy; Rejected sends the batch's rows to the
dead-letter store with the reason and moves on (the pipeline first retries a refused multi-source batch
one source at a time, so only the offending source's rows are dead-lettered). A sink classifies its
backend's failures itself: callers never inspect vendor exception types.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Union

from uploader.batch import Batch


@dataclass(frozen=True)
class Delivered:
    positions: dict[str, int]  # per part's app id: the sink now durably holds every row of that source up to this id
    rows: int = 0  # rows written by this call (0 when the sink already held them)


@dataclass(frozen=True)
class Retry:
    reason: str


@dataclass(frozen=True)
class Rejected:
    reason: str


Outcome = Union[Delivered, Retry, Rejected]


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str


class Sink(Protocol):
    name: str
    stage: str

    def check(self) -> CheckResult:
        """Do what a write does without leaving anything a user would notice."""

    def write(self, batch: Batch) -> Outcome:
        """Deliver every part of the batch atomically (idempotently: a replay of a delivered range writes nothing).

        Raises the source's exception (`batch.source_error`) when a source failed while it was read."""

    def resume_from(self, app_id: str) -> int | None:
        """The position the sink itself durably holds for this source, or None if it keeps none."""
