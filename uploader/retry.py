"""One backoff policy for every sink: exponential with full jitter (AWS architecture blog), capped.

Delay before attempt n (n = 1 after the first failure) is uniform in [0, min(cap, initial * 2**(n-1))].
`--once` bounds the attempts per batch; `--continuous` retries without limit.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from uploader.sinks.base import RetrySettings


@dataclass
class Backoff:
    settings: RetrySettings
    bounded: bool
    failures: int = 0
    not_before: float = 0.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self) -> float:
        ceiling = min(self.settings.max_seconds, self.settings.initial_seconds * 2 ** max(self.failures - 1, 0))
        return self.rng.uniform(0, ceiling)

    def record_failure(self, now: float | None = None) -> None:
        self.failures += 1
        self.not_before = (time.monotonic() if now is None else now) + self.delay()

    def record_success(self) -> None:
        self.failures = 0
        self.not_before = 0.0

    def is_exhausted(self) -> bool:
        return self.bounded and self.failures >= self.settings.once_max_attempts

    def is_waiting(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) < self.not_before
