"""A sensor's readings on its schedule: timestamps, local offsets, values and anomalies, block by block.

Reading k of a stream is scheduled at `start_ms + k * 1000 / rate` (UTC epoch milliseconds), so a
backfill and the real-time phase that follows it form one evenly spaced series. The stream's random
state is seeded from (sensor seed, first seq), so a resumed sensor does not replay old values and
the same seed always gives the same readings. With delivery faults on (`faults.py`) a block is the
rows written now, in write order: late and buffered readings join the block they are due in.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sensor_manager.simulator.anomalies import AnomalyProcess, AnomalyProfile
from sensor_manager.simulator.db import ANOMALY_CODES
from sensor_manager.simulator.faults import FaultProcess
from sensor_manager.simulator.localtime import offsets_minutes, zone
from sensor_manager.simulator.settings import FaultSettings
from sensor_manager.simulator.values import MetricTable, ValueModel

LOOKAHEAD_SECONDS = 60.0
MAX_LOOKAHEAD = 256
ANOMALY_NAMES = {code: name for name, code in ANOMALY_CODES.items()}


@dataclass
class Block:
    """Readings ready to write; skipped readings (missing_data in skip mode) are already removed."""

    ts_ms: np.ndarray  # int64 UTC epoch milliseconds
    utc_offset_min: np.ndarray  # int32 minutes east of UTC
    values: np.ndarray  # float64 (n x 5), NaN where missing_data writes NULL
    anomaly: np.ndarray  # int64 code, 0 = none
    skipped: int  # scheduled readings not written
    last_scheduled_ms: int  # timestamp of the last scheduled reading, written or skipped
    fault: np.ndarray | None = None  # uint8 fault code per row (0 = clean); None: faults off
    duplicate_of: np.ndarray | None = None  # int64 row of this block a duplicate copies, -1 otherwise

    def __len__(self) -> int:
        return len(self.ts_ms)

    def split(self, max_rows: int) -> list[Block]:
        """Blocks of at most `max_rows` rows (one more where a cut would part a duplicate from its original)."""
        if len(self) <= max_rows:
            return [self]
        cuts, start = [], 0
        while len(self) - start > max_rows:
            cut = start + max_rows
            if self.duplicate_of is not None and self.duplicate_of[cut] >= 0:
                cut += 1
            cuts.append(cut)
            start = cut
        parts = []
        for i, (lo, hi) in enumerate(zip([0, *cuts], [*cuts, len(self)], strict=True)):
            duplicate_of = None if self.duplicate_of is None else np.where(
                self.duplicate_of[lo:hi] >= 0, self.duplicate_of[lo:hi] - lo, -1)
            parts.append(Block(self.ts_ms[lo:hi], self.utc_offset_min[lo:hi], self.values[lo:hi], self.anomaly[lo:hi],
                               self.skipped if i == 0 else 0, self.last_scheduled_ms,
                               None if self.fault is None else self.fault[lo:hi], duplicate_of))
        return parts


class ReadingStream:
    def __init__(self, *, timezone: str, table: MetricTable, profile: AnomalyProfile, readings_per_second: float,
                 seed: int, first_seq: int, start_ms: int, faults: FaultSettings | None = None):
        values_seed, anomaly_seed = np.random.SeedSequence([seed, first_seq]).spawn(2)
        self.zone = zone(timezone)
        self.table = table
        self.rate = readings_per_second
        self.period_ms = 1000.0 / readings_per_second
        self.start_ms = start_ms
        self.scheduled = 0  # readings handed out so far
        self.lookahead = max(1, min(MAX_LOOKAHEAD, int(readings_per_second * LOOKAHEAD_SECONDS)))
        self._buffer: tuple[np.ndarray, ...] | None = None  # readings generated ahead
        self._offset = 0
        self.last_code = 0
        self.values = ValueModel(table, np.random.default_rng(values_seed), readings_per_second)
        self.anomalies = AnomalyProcess(profile, np.random.default_rng(anomaly_seed), readings_per_second)
        self.seed, self.first_seq = seed, first_seq
        self.faults: FaultProcess | None = None
        if faults is not None:
            self.configure_faults(faults)

    def configure_faults(self, settings: FaultSettings) -> None:
        """Apply fault settings from the next block on; readings the old ones still hold are written as due."""
        previous = self.faults
        self.faults = FaultProcess(settings, sensor_seed=self.seed, first_seq=self.first_seq,
                                   readings_per_second=self.rate, start_ms=self.start_ms, position=self.scheduled)
        if previous is not None:
            self.faults.inherit(previous)
        if self.faults.is_idle:
            self.faults = None

    def scheduled_ms(self, k: int) -> int:
        return self.start_ms + int(round(k * self.period_ms))

    @property
    def next_ms(self) -> int:
        """When the next reading is due."""
        return self.scheduled_ms(self.scheduled)

    def due_count(self, until_ms: float) -> int:
        """Readings scheduled at or before `until_ms` that are not handed out yet."""
        if until_ms < self.next_ms:
            return 0
        last = int((until_ms - self.start_ms) // self.period_ms)
        while self.scheduled_ms(last + 1) <= until_ms:
            last += 1
        while last >= self.scheduled and self.scheduled_ms(last) > until_ms:
            last -= 1
        return max(0, last + 1 - self.scheduled)

    def next_block(self, n: int) -> Block:
        """The next n scheduled readings.

        Slow sensors generate up to LOOKAHEAD_SECONDS of readings at once and hand them out as they
        fall due: numpy's per-call cost is paid once per lookahead, not once per reading.
        """
        if self._buffer is None and n >= self.lookahead:
            generated = self._generate(self.scheduled, n)  # backfill and fast sensors: no copies
        else:
            buffer = self._buffer
            available = 0 if buffer is None else len(buffer[0]) - self._offset
            if buffer is None or available < n:
                more = self._generate(self.scheduled + available, max(n - available, self.lookahead))
                buffer = self._buffer = more if buffer is None else tuple(
                    np.concatenate((old[self._offset:], new)) for old, new in zip(buffer, more, strict=True))
                self._offset = 0
            generated = tuple(a[self._offset:self._offset + n] for a in buffer)
            self._offset += n
            if self._offset >= len(buffer[0]):
                self._buffer, self._offset = None, 0
        first = self.scheduled
        self.scheduled += n
        ts_ms, offsets, values, codes, keep = generated
        self.last_code = int(codes[-1]) if n else self.last_code
        last = int(ts_ms[-1]) if n else self.next_ms
        if self.faults is not None:
            k = np.arange(first, first + n)[keep]
            rows = self.faults.apply(first, first + n, k, ts_ms[keep], offsets[keep], values[keep], codes[keep])
            if self.faults.is_idle:  # e.g. turned off by a reload, its held readings now written
                self.faults = None
            return Block(rows.ts_ms, rows.utc_offset_min, rows.values, rows.anomaly, int(n - keep.sum()), last,
                         rows.fault, rows.duplicate_of)
        if keep.all():
            return Block(ts_ms, offsets, values, codes, 0, last)
        return Block(ts_ms[keep], offsets[keep], values[keep], codes[keep], int(n - keep.sum()), last)

    def _generate(self, first: int, n: int) -> tuple[np.ndarray, ...]:
        k = np.arange(first, first + n, dtype=np.float64)
        ts_ms = self.start_ms + np.rint(k * self.period_ms).astype(np.int64)
        offsets = offsets_minutes(self.zone, ts_ms)
        local_hours = ((ts_ms // 1000 + offsets.astype(np.int64) * 60) % 86_400) / 3600.0
        values = self.values.generate(local_hours)
        codes, keep = self.anomalies.apply(values, self.table.std)
        if codes.any():
            flagged = codes > 0
            values[flagged] = self.table.fold_into_bounds(values[flagged])
        return ts_ms, offsets, values, codes, keep

    def inject(self, kind, duration_seconds: float) -> None:
        """Start an anomaly episode with the next reading handed out: readings generated ahead are dropped."""
        self._buffer, self._offset = None, 0
        self.anomalies.force(kind, duration_seconds)

    @property
    def active_anomaly(self) -> str | None:
        """The anomaly of the last reading handed out (not of readings generated ahead)."""
        return ANOMALY_NAMES.get(self.last_code)
