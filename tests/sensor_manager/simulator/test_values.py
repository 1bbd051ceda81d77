"""Values look measured: truncated, autocorrelated, diurnal, biased per sensor; same seed, same rows."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sensor_manager.simulator.db import open_readonly
from sensor_manager.simulator.runner import run_simulation
from sensor_manager.simulator.settings import METRICS, NormalParameters

from .conftest import FixedClock, make_options, make_spec

NOW = 1_751_371_200.0  # 2025-07-01T12:00:00Z
THREE_DAYS = 3 * 86_400


def _read(path) -> dict[str, np.ndarray]:
    rows = open_readonly(path).execute(
        f"SELECT timestamp, original_timezone, {', '.join(METRICS)} FROM sensor_readings ORDER BY id").fetchall()
    local_hours = []
    for ts, offset in ((r[0], r[1]) for r in rows):
        sign = -1 if offset[0] == "-" else 1
        minutes = sign * (int(offset[1:3]) * 60 + int(offset[4:6]))
        hh, mm, ss = int(ts[11:13]), int(ts[14:16]), float(ts[17:23])
        local_hours.append(((hh * 60 + mm + minutes) % 1440 + ss / 60) / 60)
    data = {m: np.array([np.nan if r[2 + i] is None else r[2 + i] for r in rows]) for i, m in enumerate(METRICS)}
    data["hour"] = np.array(local_hours)
    return data


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory):
    root = tmp_path_factory.mktemp("values")
    specs = [make_spec(root, sensor_id=f"Berlin_S{i:03d}", seed=1000 + i) for i in range(3)]
    options = make_options(rate=1 / 60, backfill=THREE_DAYS, duration=0.01)
    run_simulation(specs, options, wall_clock=FixedClock(NOW))
    return [_read(spec.directory / "sensor_data.db") for spec in specs]


def _lag1(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    x = x - x.mean()
    return float((x[1:] * x[:-1]).sum() / (x * x).sum())


def test_three_days_at_one_per_minute(backfilled):
    assert all(len(d["temperature"]) >= 0.9 * THREE_DAYS / 60 for d in backfilled)


@pytest.mark.parametrize("metric", METRICS)
def test_lag1_autocorrelation_in_range(backfilled, metric):
    for data in backfilled:
        assert 0.7 <= _lag1(data[metric]) <= 0.99


@pytest.mark.parametrize("metric", METRICS)
def test_no_pile_up_at_bounds(backfilled, metric):
    params = getattr(NormalParameters(), metric)
    for data in backfilled:
        values = data[metric][~np.isnan(data[metric])]
        at_bound = np.isclose(values, params.min, rtol=0, atol=1e-6) | np.isclose(values, params.max, rtol=0, atol=1e-6)
        assert at_bound.mean() < 0.001
        assert values.min() >= params.min and values.max() <= params.max


def test_diurnal_temperature_peaks_mid_afternoon(backfilled):
    sigma = NormalParameters().temperature.std_dev
    for data in backfilled:
        keep = ~np.isnan(data["temperature"])
        angle = 2 * math.pi * data["hour"][keep] / 24
        design = np.column_stack([np.ones(keep.sum()), np.cos(angle), np.sin(angle)])
        (_, a, b), *_ = np.linalg.lstsq(design, data["temperature"][keep], rcond=None)
        amplitude = math.hypot(a, b)
        peak_hour = (math.degrees(math.atan2(b, a)) / 15) % 24
        assert amplitude >= 0.5 * sigma
        assert abs(peak_hour - 15) <= 2


def test_per_sensor_bias(backfilled):
    params = NormalParameters()
    for metric in ("temperature", "pressure"):
        p = getattr(params, metric)
        offsets = [abs(np.nanmean(d[metric]) - p.mean) / p.std_dev for d in backfilled]
        assert all(0.1 <= o <= 0.5 for o in offsets), offsets


def test_same_seed_same_rows(tmp_path):
    tables = []
    for run in ("a", "b"):
        spec = make_spec(tmp_path / run, seed=99)
        run_simulation([spec], make_options(rate=1.0, backfill=3600, duration=0.01), wall_clock=FixedClock(NOW))
        rows = open_readonly(spec.directory / "sensor_data.db").execute(
            "SELECT * FROM sensor_readings WHERE timestamp <= '2025-07-01T12:00:00.000+00:00' ORDER BY id").fetchall()
        tables.append(rows)
    assert len(tables[0]) > 3000
    assert tables[0] == tables[1]
    other = make_spec(tmp_path / "c", seed=100)
    run_simulation([other], make_options(rate=1.0, backfill=3600, duration=0.01), wall_clock=FixedClock(NOW))
    different = open_readonly(other.directory / "sensor_data.db").execute(
        "SELECT temperature FROM sensor_readings ORDER BY id LIMIT 10").fetchall()
    assert different != [(r[3],) for r in tables[0][:10]]


def test_tight_bounds_truncate_without_pile_up():
    from sensor_manager.simulator.values import MetricTable, ValueModel

    params = NormalParameters(temperature={"mean": 65, "std_dev": 2, "min": 64, "max": 66})
    model = ValueModel(MetricTable(params), np.random.default_rng(5), 1.0)
    values = model.generate(np.linspace(0, 24, 20_000, endpoint=False))[:, 0]
    assert values.min() >= 64 and values.max() <= 66
    assert np.isclose(values, 64, atol=1e-6).mean() < 0.001 and np.isclose(values, 66, atol=1e-6).mean() < 0.001
    assert values.std() > 0.3  # spread across the band, not collapsed
