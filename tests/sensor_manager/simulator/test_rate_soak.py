"""Closed-loop rate over long windows (soak: run with `-m soak`)."""
from __future__ import annotations

from datetime import datetime

import pytest

from sensor_manager.simulator.db import open_readonly
from sensor_manager.simulator.runner import run_simulation

from .conftest import make_options, make_spec


@pytest.mark.soak
@pytest.mark.parametrize(("rate", "seconds"), [(1.0, 125.0), (30.0, 32.0), (100.0, 32.0), (1000.0, 32.0)])
def test_rate_within_one_percent(tmp_path, rate, seconds):
    spec = make_spec(tmp_path)
    summary = run_simulation([spec], make_options(rate=rate, duration=seconds))
    rows, first, last = open_readonly(spec.directory / "sensor_data.db").execute(
        "SELECT count(*), min(timestamp), max(timestamp) FROM sensor_readings").fetchone()
    span = datetime.fromisoformat(last).timestamp() - datetime.fromisoformat(first).timestamp()
    achieved = (rows + summary.skipped_readings - 1) / span
    assert abs(achieved / rate - 1) <= 0.01
    assert abs((rows + summary.skipped_readings) / (seconds * rate) - 1) <= 0.01 + 1 / (seconds * rate)
