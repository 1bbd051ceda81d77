"""The value model: five metrics that look measured, not drawn i.i.d.

value = mean + per-sensor bias + diurnal term(local hour) + std_dev * latent, where `latent` is a
unit-variance AR(1) process whose per-reading coefficient follows a fixed correlation time, so the
series is equally smooth at every rate. Values outside [min, max] are redrawn from the same normal
(a truncated normal: nothing piles up at the bounds). Everything is vectorised over a block.
"""
from __future__ import annotations

import math

import numpy as np

from sensor_manager.simulator.settings import METRICS, NormalParameters

CORRELATION_SECONDS = 600.0
PEAK_HOUR = 15.0
# Diurnal amplitude per metric in units of its std_dev; humidity runs opposite to temperature.
DIURNAL_AMPLITUDE = np.array([1.0, -0.8, 0.3, 0.3, 0.2])
BIAS_RANGE = (0.2, 0.4)  # |per-sensor bias| in std_devs
_REDRAW_ROUNDS = 32
_CHUNK = 64


def _scan(x: np.ndarray, phi: float, axis: int) -> None:
    """In place, along `axis`: x[t] += phi * x[t-1] + phi^2 * x[t-2] + ... (a log-depth prefix scan)."""
    n = x.shape[axis]
    shift, factor = 1, phi
    while shift < n and factor > 1e-300:
        head = [slice(None)] * x.ndim
        tail = [slice(None)] * x.ndim
        head[axis], tail[axis] = slice(shift, None), slice(None, -shift)
        x[tuple(head)] += factor * x[tuple(tail)]
        shift, factor = shift * 2, factor * factor


class MetricTable:
    """The configured parameters as arrays over METRICS (column order of a value block)."""

    def __init__(self, params: NormalParameters):
        rows = [getattr(params, name) for name in METRICS]
        self.mean = np.array([r.mean for r in rows])
        self.std = np.array([r.std_dev for r in rows])
        self.low = np.array([r.min for r in rows])
        self.high = np.array([r.max for r in rows])

    def fold_into_bounds(self, values: np.ndarray) -> np.ndarray:
        """Reflect values beyond a bound back inside it (anomalies may push past a bound)."""
        span = self.high - self.low
        folded = np.where(values > self.high, 2 * self.high - values, values)
        folded = np.where(folded < self.low, 2 * self.low - folded, folded)
        return np.clip(folded, self.low + 1e-9 * span, self.high - 1e-9 * span)


class ValueModel:
    """One sensor's value process; `generate` continues it for the next block of readings."""

    def __init__(self, table: MetricTable, rng: np.random.Generator, readings_per_second: float):
        self.table = table
        self.rng = rng
        self.phi = math.exp(-1.0 / (readings_per_second * CORRELATION_SECONDS))
        sign = rng.choice((-1.0, 1.0), size=len(METRICS))
        self.bias = sign * rng.uniform(*BIAS_RANGE, size=len(METRICS)) * table.std
        self.latent = rng.standard_normal(len(METRICS))

    def generate(self, local_hours: np.ndarray) -> np.ndarray:
        """Values (n x 5) for readings at the given local hours of day."""
        table = self.table
        cycle = np.cos((local_hours - PEAK_HOUR) * (2 * math.pi / 24.0))
        values = self._advance(len(local_hours))  # in place from here on: this runs per block
        reach = max(float(values.max()), -float(values.min()), 0.0)  # whole-array reductions are cheap
        values *= table.std
        values += table.mean + self.bias
        values += cycle[:, None] * (DIURNAL_AMPLITUDE * table.std)
        # Exact per-column bounds checks only when the block could possibly reach a bound.
        spread = (np.abs(DIURNAL_AMPLITUDE) + reach) * table.std
        could_leave = ((table.mean + self.bias - spread) < table.low).any() or (
            (table.mean + self.bias + spread) > table.high).any()
        if could_leave and ((values.min(axis=0) < table.low).any() or (values.max(axis=0) > table.high).any()):
            centre = table.mean + self.bias + cycle[:, None] * (DIURNAL_AMPLITUDE * table.std)
            self._truncate(values, centre)
        return values

    def _advance(self, n: int) -> np.ndarray:
        """The next n steps of the AR(1) latent, vectorised: a scan within chunks, then the chunk carries."""
        phi, m, width = self.phi, min(_CHUNK, n), len(METRICS)
        chunks = -(-n // m)
        x = self.rng.standard_normal((chunks * m, width)) * math.sqrt(1.0 - phi * phi)
        x = x.reshape(chunks, m, width)
        _scan(x, phi, axis=1)
        carries = x[:, -1, :].copy()  # each chunk's own contribution at its end
        carries[0] += phi ** m * self.latent
        _scan(carries, phi ** m, axis=0)  # carries[j]: the latent at the end of chunk j
        start = np.vstack([self.latent[None, :], carries[:-1]])  # the latent before each chunk
        x += (phi ** np.arange(1, m + 1))[None, :, None] * start[:, None, :]
        x = x.reshape(chunks * m, width)[:n]
        self.latent = x[-1].copy()
        return x

    def _truncate(self, values: np.ndarray, centre: np.ndarray) -> None:
        """Redraw values outside [min, max] from the same normal, in place."""
        table = self.table
        outside = (values < table.low) | (values > table.high)
        for _ in range(_REDRAW_ROUNDS):
            if not outside.any():
                return
            rows, cols = np.nonzero(outside)
            values[rows, cols] = centre[rows, cols] + self.rng.standard_normal(len(rows)) * table.std[cols]
            outside = (values < table.low) | (values > table.high)
        # Bounds far narrower than std_dev: fall back to uniform within them.
        rows, cols = np.nonzero(outside)
        values[rows, cols] = self.rng.uniform(table.low[cols], table.high[cols])
