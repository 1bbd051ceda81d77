"""Delivery faults: what a real fleet's transport does to readings, each faulty row labelled.

Applied to a block of readings as it is handed out (`ReadingStream.next_block`), in schedule-index
space (reading k is due at `start_ms + k / rate`), vectorised:

- offline_burst: episodes of `duration_seconds` alternate with online gaps drawn uniformly between
  half and one and a half times their mean (narrower than the anomalies' geometric gaps, so the
  configured fraction holds over a few dozen bursts); an episode's readings are held and written at
  once when it ends.
- out_of_order: a reading is held for 1..max_delay_seconds worth of readings and written after the
  readings measured later; it keeps its timestamp.
- duplicate: a written row is sent again right after itself: a new seq, the same timestamp and
  values, `duplicate_of` = the seq of the row it copies.
- clock_skew: a sensor chosen by the seed records every timestamp off by a fixed offset plus a
  drift since its stream started (a reboot resyncs its clock).

Every row carries one label (`fault`, NULL for a clean row) in this order of precedence: duplicate,
out_of_order, offline_burst, clock_skew. Rates are fractions of written rows, so the per-reading
probabilities are solved from them: with duplicate rate d a row is copied with probability d/(1-d),
an offline fraction f of rows needs f/(1-d) of readings, and late rows are drawn from the rest.
The draws come from (sensor seed, first seq, `faults.seed`); the skew from (sensor seed, `faults.seed`)
alone, so a sensor keeps its clock across restarts. Readings still held when the sensor stops are
lost, as a real device's buffer would be.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sensor_manager.simulator.db import FAULT_CODES
from sensor_manager.simulator.settings import FaultSettings

DUPLICATE = FAULT_CODES["duplicate"]
OUT_OF_ORDER = FAULT_CODES["out_of_order"]
OFFLINE_BURST = FAULT_CODES["offline_burst"]
CLOCK_SKEW = FAULT_CODES["clock_skew"]
_ROWS_STREAM, _SKEW_STREAM = 1, 2  # distinct random streams from the same seeds


@dataclass(frozen=True)
class ClockSkew:
    offset_ms: float
    drift: float  # recorded milliseconds gained per true millisecond

    def recorded(self, ts_ms: np.ndarray, start_ms: int) -> np.ndarray:
        return ts_ms + np.rint(self.offset_ms + self.drift * (ts_ms - start_ms)).astype(np.int64)


def clock_skew(settings: FaultSettings, sensor_seed: int) -> ClockSkew | None:
    """This sensor's clock error, or None when its clock is right."""
    rng = np.random.default_rng([sensor_seed, settings.seed, _SKEW_STREAM])
    skew = settings.clock_skew
    if not settings.enabled or rng.random() >= skew.rate:
        return None
    return ClockSkew(offset_ms=rng.uniform(-1, 1) * skew.max_offset_seconds * 1000,
                     drift=rng.uniform(-1, 1) * skew.max_drift_ppm * 1e-6)


@dataclass
class Rows:
    """Readings in write order: what a block hands the writer."""

    ts_ms: np.ndarray
    utc_offset_min: np.ndarray
    values: np.ndarray
    anomaly: np.ndarray
    fault: np.ndarray  # uint8 code, 0 = clean
    duplicate_of: np.ndarray  # int64 row index within these rows that a duplicate copies, -1 otherwise


class FaultProcess:
    """One sensor's delivery faults, continued block by block; holds the readings not written yet."""

    def __init__(self, settings: FaultSettings, *, sensor_seed: int, first_seq: int, readings_per_second: float,
                 start_ms: int, position: int = 0):
        # position: readings the stream handed out before these settings (a reload draws afresh from there)
        self.rng = np.random.default_rng([sensor_seed, first_seq, settings.seed, _ROWS_STREAM, position])
        self.start_ms = start_ms
        self.skew = clock_skew(settings, sensor_seed)
        on = settings.enabled
        d = settings.duplicate.rate if on else 0.0
        offline = settings.offline_burst.rate / (1 - d) if on else 0.0
        self.p_duplicate = d / (1 - d)
        self.p_late = settings.out_of_order.rate / ((1 - d) * (1 - offline)) if on else 0.0
        self.max_delay = max(1, round(settings.out_of_order.max_delay_seconds * readings_per_second))
        self.burst = max(1, round(settings.offline_burst.duration_seconds * readings_per_second))
        self.mean_gap = self.burst * (1 - offline) / offline if offline > 0 else math.inf
        self.offline_until = 0  # schedule index where the current offline episode ends
        self.gap = self._draw_gap()
        self.newest_ms = 0  # the latest measurement time written so far
        self.held_key = np.empty(0)  # when a held reading is written, in schedule-index units
        self.held: tuple[np.ndarray, ...] = ()

    def _draw_gap(self) -> float:
        return float(round(self.rng.uniform(0.5, 1.5) * self.mean_gap)) if math.isfinite(self.mean_gap) else math.inf

    @property
    def holding(self) -> int:
        return len(self.held_key)

    @property
    def is_idle(self) -> bool:
        """Nothing to apply and nothing held: the stream can drop this process."""
        return (self.p_duplicate == 0 and self.p_late == 0 and math.isinf(self.mean_gap) and self.skew is None
                and not self.holding)

    def inherit(self, previous: FaultProcess) -> None:
        """Take over the readings an earlier configuration still holds (a reload must not lose them)."""
        self.held_key, self.held = previous.held_key, previous.held
        self.offline_until = previous.offline_until
        self.newest_ms = previous.newest_ms

    def _offline_until(self, k: np.ndarray, first: int, end: int) -> np.ndarray:
        """For each reading, the index at which its offline episode ends, or -1 when it is online."""
        until = np.full(len(k), -1, dtype=np.int64)
        pos = first
        while pos < end:
            if pos < self.offline_until:
                stop = min(self.offline_until, end)
                until[(k >= pos) & (k < stop)] = self.offline_until
                pos = stop
            elif self.gap > 0:
                step = int(min(self.gap, end - pos))
                pos += step
                self.gap -= step
            else:
                self.offline_until = pos + self.burst
                self.gap = self._draw_gap()
        return until

    def apply(self, first: int, end: int, k: np.ndarray, ts_ms: np.ndarray, offsets: np.ndarray, values: np.ndarray,
              anomaly: np.ndarray) -> Rows:
        """Readings k (scheduled in [first, end)) plus held ones now due, in write order, with their labels."""
        n = len(k)
        until = self._offline_until(k, first, end) if math.isfinite(self.mean_gap) else np.full(n, -1, dtype=np.int64)
        offline = until >= 0
        late = ~offline & (self.rng.random(n) < self.p_late) if self.p_late > 0 else np.zeros(n, dtype=bool)
        key = k.astype(np.float64)
        fault = np.zeros(n, dtype=np.uint8)
        if offline.any() or late.any():
            key[offline] = until[offline] - 0.5  # written as the sensor comes back, before its next reading
            key[late] = k[late] + self.rng.integers(1, self.max_delay + 1, size=int(late.sum())) + 0.5
            fault[offline] = OFFLINE_BURST
            fault[late] = OUT_OF_ORDER
        columns: tuple[np.ndarray, ...] = (ts_ms, offsets, values, anomaly, fault)
        if self.holding or offline.any() or late.any():
            key = np.concatenate((self.held_key, key)) if self.holding else key
            if self.holding:
                columns = tuple(np.concatenate((old, new)) for old, new in zip(self.held, columns, strict=True))
            due = key < end
            if not due.all():
                self.held_key, self.held = key[~due], tuple(c[~due] for c in columns)
                key, columns = key[due], tuple(c[due] for c in columns)
            else:
                self.held_key, self.held = np.empty(0), ()
            order = np.argsort(key, kind="stable")
            columns = tuple(c[order] for c in columns)
            columns = self._in_order_is_not_late(*columns)
        if len(columns[0]):
            self.newest_ms = max(self.newest_ms, int(columns[0].max()))
        return self._with_duplicates(*columns)

    def _in_order_is_not_late(self, ts_ms, offsets, values, anomaly, fault) -> tuple[np.ndarray, ...]:
        """A held reading whose later readings were all skipped or held too arrives in order after all: clean."""
        late = fault == OUT_OF_ORDER
        if late.any():
            newest_before = np.maximum.accumulate(np.concatenate(([self.newest_ms], ts_ms)))[:-1]
            fault = np.where(late & (ts_ms >= newest_before), 0, fault).astype(np.uint8)
        return ts_ms, offsets, values, anomaly, fault

    def _with_duplicates(self, ts_ms, offsets, values, anomaly, fault) -> Rows:
        if self.skew is not None:
            ts_ms = self.skew.recorded(ts_ms, self.start_ms)
            fault = np.where(fault == 0, CLOCK_SKEW, fault).astype(np.uint8)
        n = len(ts_ms)
        copied = self.rng.random(n) < self.p_duplicate if self.p_duplicate > 0 else None
        if copied is None or not copied.any():
            return Rows(ts_ms, offsets, values, anomaly, fault, np.full(n, -1, dtype=np.int64))
        source = np.repeat(np.arange(n), 1 + copied)  # each copied row twice, the copy right after it
        is_copy = np.zeros(len(source), dtype=bool)
        is_copy[1:] = source[1:] == source[:-1]
        duplicate_of = np.where(is_copy, np.arange(len(source)) - 1, -1)
        out_fault = np.where(is_copy, DUPLICATE, fault[source]).astype(np.uint8)
        return Rows(ts_ms[source], offsets[source], values[source], anomaly[source], out_fault, duplicate_of)
