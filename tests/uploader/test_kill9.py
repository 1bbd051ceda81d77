"""kill -9 the uploader at random points while a sensor keeps writing: every row lands exactly once."""
from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.uploader.chaos import kill_9_repeatedly, sensors_writing


def chaos(project: Path, lake_rows, kills: int, seed: int, rows_per_second: int | None = None) -> None:
    rng = random.Random(seed)
    config = project / "sensor-manager.yaml"
    config.write_text("uploader:\n  sinks:\n    delta:\n      batch_size: 300\n")
    uploader = [sys.executable, "-m", "uploader", "--sqlite", str(project / "data"), "--project-dir", str(project),
                "--config", str(config)]
    with sensors_writing(project, rows_per_second):
        kill_9_repeatedly(uploader, kills, rng, (0.6, 2.0))  # start-up takes ~0.6 s
    final = subprocess.run([*uploader, "--once"], capture_output=True, text=True, timeout=240)
    assert final.returncode == 0, final.stderr
    source_rows = {}
    for code in ("AA11", "BB22"):
        with sqlite3.connect(project / "data" / "Berlin" / code / "sensor_data.db") as con:
            source_rows[f"Berlin_{code}"] = con.execute("SELECT count(*) FROM sensor_readings").fetchone()[0]
    table = lake_rows(project / "lake" / "sensor_readings")
    shipped = Counter(zip(table["sensor_id"].to_pylist(), table["fleet_epoch"].to_pylist(), table["seq"].to_pylist(), strict=True))
    assert max(shipped.values()) == 1, "a key arrived twice"
    assert Counter(table["sensor_id"].to_pylist()) == source_rows
    assert sum(source_rows.values()) > 1_000
    from deltalake import DeltaTable

    assert DeltaTable(str(project / "lake" / "sensor_readings")).version() > kills // 2  # the killed runs did commit


@pytest.mark.slow
def test_kill_9_twenty_times_while_a_sensor_writes_loses_and_duplicates_nothing(project, lake_rows):
    chaos(project, lake_rows, kills=20, seed=int(os.environ.get("KILL9_SEED", "4")))


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_kill_9_two_hundred_times(project, lake_rows):
    # Paced: at full speed the writers outrun 300-row batches for the 4.5 minutes of kills.
    chaos(project, lake_rows, kills=200, seed=int(os.environ.get("KILL9_SEED", "7")), rows_per_second=200)
