"""The sink contract: `check()`, `write(batch)` → Delivered | Retry | Rejected, `resume_from(app_id)`.

The pipeline moves a sink's checkpoint only on Delivered (to `Delivered.position`, which may be below
the batch end when the sink already held part of it). Retry goes through the backoff policy; Rejected
sends the batch's rows to the dead-letter store with the reason and moves on. A sink classifies its
backend's failures itself: callers never inspect vendor exception types.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Union

from uploader.batch import Batch


@dataclass(frozen=True)
class Delivered:
    position: int  # the sink now durably holds every row of the source up to this id
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
        """Deliver the batch (idempotently: a replay of a delivered range writes nothing)."""

    def resume_from(self, app_id: str) -> int | None:
        """The position the sink itself durably holds for this source, or None if it keeps none."""
