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
        n = len(local_hours)
        latent = self._advance(n)
        diurnal = np.cos(2 * math.pi * (local_hours - PEAK_HOUR) / 24.0)[:, None] * DIURNAL_AMPLITUDE
        centre = self.table.mean + self.bias + diurnal * self.table.std
        values = centre + latent * self.table.std
        return self._truncate(values, centre)

    def _advance(self, n: int) -> np.ndarray:
        """The next n steps of the AR(1) latent: a log-depth scan instead of a Python loop."""
        phi = self.phi
        x = self.rng.standard_normal((n, len(METRICS))) * math.sqrt(1.0 - phi * phi)
        x[0] += phi * self.latent
        shift, factor = 1, phi
        while shift < n and factor > 1e-300:
            x[shift:] += factor * x[:-shift]
            shift, factor = shift * 2, factor * factor
        self.latent = x[-1].copy()
        return x

    def _truncate(self, values: np.ndarray, centre: np.ndarray) -> np.ndarray:
        table = self.table
        outside = (values < table.low) | (values > table.high)
        for _ in range(_REDRAW_ROUNDS):
            if not outside.any():
                return values
            rows, cols = np.nonzero(outside)
            values[rows, cols] = centre[rows, cols] + self.rng.standard_normal(len(rows)) * table.std[cols]
            outside = (values < table.low) | (values > table.high)
        # Bounds far narrower than std_dev: fall back to uniform within them.
        rows, cols = np.nonzero(outside)
        values[rows, cols] = self.rng.uniform(table.low[cols], table.high[cols])
        return values
