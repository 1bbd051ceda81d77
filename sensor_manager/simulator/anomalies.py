"""Anomalies: multi-row episodes of five kinds, never overlapping, at a configured expected fraction.

`probability` is the expected fraction of readings inside an anomaly. Episodes alternate with
normal gaps (a renewal process): a gap is geometric with per-reading start probability p, an episode
lasts its type's duration. With D the mean episode length in readings, the fraction is
D / (D + (1 - p) / p), so p = f / (D (1 - f) + f).

Device variants change the fraction and the type weights through `devices.modifiers`, a table keyed
by manufacturer, model, firmware version or firmware prefix ("1.4.x"); every matching entry applies.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sensor_manager.simulator.db import ANOMALY_CODES
from sensor_manager.simulator.settings import ANOMALY_TYPES, METRICS, AnomalyName, AnomalySettings, DeviceSettings

SPIKE_SIGMAS = (2.0, 3.0)
TREND_SIGMAS = 3.0
PATTERN_SIGMAS = 2.0
PATTERN_CYCLES = 3.0
NOISE_SIGMAS = 3.0
_METRIC_INDEX = {name: i for i, name in enumerate(METRICS)}


def variant_keys(manufacturer: str, model: str, firmware_version: str) -> list[str]:
    """Modifier-table keys a device matches: its names, its firmware and the firmware's prefixes."""
    parts = firmware_version.split(".")
    # "1.4.0" matches "1.4.x" and "1.x"; the seed's two-part "1.4" matches "1.4.x" too.
    prefixes = [".".join(parts[:i]) + ".x" for i in range(min(len(parts), 2), 0, -1)]
    return [manufacturer, model, firmware_version, *prefixes]


@dataclass(frozen=True)
class AnomalyProfile:
    """A device's anomaly behaviour once its variant modifiers are applied."""

    fraction: float  # expected fraction of readings inside an anomaly
    types: tuple[AnomalyName, ...]  # enabled types with weight > 0
    weights: tuple[float, ...]
    durations_seconds: tuple[float, ...]
    metrics: tuple[tuple[int, ...], ...]  # eligible metric columns per type
    missing_data_mode: str

    def episode_readings(self, readings_per_second: float) -> np.ndarray:
        return np.maximum(1, np.rint(np.array(self.durations_seconds) * readings_per_second)).astype(np.int64)

    def start_probability(self, readings_per_second: float) -> float:
        """Per-reading probability that an episode starts, given the fraction and the mean duration."""
        if not self.types or self.fraction <= 0:
            return 0.0
        if self.fraction >= 1:
            return 1.0
        weights = np.array(self.weights)
        mean_length = float((weights * self.episode_readings(readings_per_second)).sum() / weights.sum())
        return self.fraction / (mean_length * (1 - self.fraction) + self.fraction)


def anomaly_profile(settings: AnomalySettings, devices: DeviceSettings, manufacturer: str, model: str,
                    firmware_version: str) -> AnomalyProfile:
    """Apply every matching variant modifier (a table lookup per key) to the configured anomalies."""
    probability_factor = 1.0
    type_factor = dict.fromkeys(ANOMALY_TYPES, 1.0)
    for key in variant_keys(manufacturer, model, firmware_version):
        modifier = devices.modifiers.get(key)
        if modifier is None:
            continue
        probability_factor *= modifier.probability
        for name, factor in modifier.types.items():
            type_factor[name] *= factor
    chosen = [
        (name, spec.weight * type_factor[name], spec.duration_seconds, tuple(_METRIC_INDEX[m] for m in spec.metrics))
        for name, spec in settings.types.items()
        if spec.enabled and spec.weight * type_factor[name] > 0 and spec.metrics
    ]
    fraction = min(1.0, settings.probability * probability_factor) if settings.enabled else 0.0
    return AnomalyProfile(
        fraction=fraction,
        types=tuple(c[0] for c in chosen),
        weights=tuple(c[1] for c in chosen),
        durations_seconds=tuple(c[2] for c in chosen),
        metrics=tuple(c[3] for c in chosen),
        missing_data_mode=settings.missing_data_mode,
    )


@dataclass
class Episode:
    kind: AnomalyName
    length: int  # readings
    done: int  # readings already generated
    metric: int
    sign: float
    magnitude: float


class AnomalyProcess:
    """One sensor's anomaly episodes, continued block by block from its own random stream."""

    def __init__(self, profile: AnomalyProfile, rng: np.random.Generator, readings_per_second: float):
        self.profile = profile
        self.rng = rng
        self.rate = readings_per_second
        self.p_start = profile.start_probability(readings_per_second)
        self.lengths = profile.episode_readings(readings_per_second)
        weights = np.array(profile.weights or (1.0,))
        self.type_cdf = np.cumsum(weights) / weights.sum()
        self.episode: Episode | None = None
        self.gap = self._draw_gap()

    def _draw_gap(self) -> float:
        if self.p_start <= 0:
            return math.inf
        return float(self.rng.geometric(self.p_start) - 1)

    def _start(self) -> Episode:
        i = min(int(np.searchsorted(self.type_cdf, self.rng.random(), side="right")), len(self.type_cdf) - 1)
        metrics = self.profile.metrics[i]
        return Episode(
            kind=self.profile.types[i],
            length=int(self.lengths[i]),
            done=0,
            metric=int(metrics[self.rng.integers(len(metrics))]),
            sign=float(self.rng.choice((-1.0, 1.0))),
            magnitude=float(self.rng.uniform(*SPIKE_SIGMAS)),
        )

    def force(self, kind: AnomalyName, duration_seconds: float) -> None:
        """Start an episode of `kind` at the next reading (`inject anomaly`), replacing one in progress."""
        configured = dict(zip(self.profile.types, self.profile.metrics, strict=True))
        metrics = configured.get(kind) or tuple(range(len(METRICS)))
        self.episode = Episode(
            kind=kind,
            length=max(1, int(round(duration_seconds * self.rate))),
            done=0,
            metric=int(metrics[self.rng.integers(len(metrics))]),
            sign=float(self.rng.choice((-1.0, 1.0))),
            magnitude=float(self.rng.uniform(*SPIKE_SIGMAS)),
        )
        self.gap = 0

    def apply(self, values: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Overlay episodes on a block in place; returns (anomaly code per row, keep mask per row)."""
        n = len(values)
        codes = np.zeros(n, dtype=np.int64)
        keep = np.ones(n, dtype=bool)
        pos = 0
        while pos < n:
            if self.episode is None and self.gap > 0:
                step = int(min(self.gap, n - pos))
                pos += step
                self.gap -= step
                continue
            if self.episode is None:
                self.episode = self._start()
            episode = self.episode
            step = min(episode.length - episode.done, n - pos)
            rows = slice(pos, pos + step)
            self._overlay(episode, values, std, rows, step, keep)
            codes[rows] = ANOMALY_CODES[episode.kind]
            episode.done += step
            pos += step
            if episode.done >= episode.length:
                self.episode = None
                self.gap = self._draw_gap()
        return codes, keep

    def _overlay(self, episode: Episode, values: np.ndarray, std: np.ndarray, rows: slice, step: int,
                 keep: np.ndarray) -> None:
        sigma = std[episode.metric]
        col = episode.metric
        k = np.arange(episode.done, episode.done + step)
        if episode.kind == "spike":
            values[rows, col] += episode.sign * episode.magnitude * sigma
        elif episode.kind == "trend":
            values[rows, col] += episode.sign * TREND_SIGMAS * sigma * (k + 1) / episode.length
        elif episode.kind == "pattern":
            values[rows, col] += PATTERN_SIGMAS * sigma * np.sin(2 * math.pi * PATTERN_CYCLES * (k + 0.5) / episode.length)
        elif episode.kind == "noise":
            values[rows, col] += self.rng.standard_normal(step) * NOISE_SIGMAS * sigma
        elif self.profile.missing_data_mode == "skip":
            keep[rows] = False
        else:
            values[rows, :] = np.nan
