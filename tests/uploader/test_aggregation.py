"""The aggregated stage end to end: windows spanning batch and restart boundaries (kill -9 included) are
emitted once each, with count/min/max/mean equal to DuckDB's over the raw rows of the edge DBs."""
from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from uploader.pipeline import Uploader
from uploader.settings import UploaderSettings

SETTINGS = {"stage": "aggregated", "aggregated": {"window": "1m", "allowed_lateness": "0s"},
            "sinks": {"delta": {"batch_size": 45}}}
METRICS = ("temperature", "humidity", "pressure", "vibration", "voltage")


def expected_windows(project: Path) -> pa.Table:
    """Per sensor and minute, DuckDB's count/min/max/mean over the edge rows, for windows the watermark has passed."""
    rows = []
    for db in (project / "data").rglob("sensor_data.db"):
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            rows += con.execute(f"SELECT sensor_id, timestamp, seq, anomaly_flag, {', '.join(METRICS)} FROM sensor_readings").fetchall()
    edge = pa.table(list(zip(*rows, strict=True)), names=["sensor_id", "timestamp", "seq", "anomaly_flag", *METRICS])
    measures = ", ".join(f"count({m}) AS {m}_count, min({m}) AS {m}_min, max({m}) AS {m}_max, avg({m}) AS {m}_mean" for m in METRICS)
    con = duckdb.connect()
    con.register("edge", edge)
    return con.sql(f"""
        WITH typed AS (SELECT *, time_bucket(INTERVAL 1 minute, CAST(timestamp AS TIMESTAMPTZ)) AS window_start,
                              max(CAST(timestamp AS TIMESTAMPTZ)) OVER (PARTITION BY sensor_id) AS newest FROM edge)
        SELECT sensor_id, window_start, count(*) AS rows, sum(anomaly_flag) AS anomaly_count, min(seq) AS first_seq,
               max(seq) AS last_seq, {measures}
        FROM typed WHERE window_start + INTERVAL 1 minute <= newest GROUP BY sensor_id, window_start
        ORDER BY sensor_id, window_start""").to_arrow_table()


def assert_windows_match(project: Path, lake_rows) -> int:
    table = lake_rows(project / "lake" / "sensor_readings_1m")
    keys = Counter(zip(table["sensor_id"].to_pylist(), table["fleet_epoch"].to_pylist(),
                       table["window_start"].to_pylist(), strict=True))
    assert keys and max(keys.values()) == 1, "a window was emitted twice"
    got = {(r["sensor_id"], r["window_start"]): r for r in table.to_pylist()}
    want = {(r["sensor_id"], r["window_start"]): r for r in expected_windows(project).to_pylist()}
    assert set(got) == set(want)
    for key, expected in want.items():
        row = got[key]
        for name, value in expected.items():
            if name.endswith("_mean") and value is not None:
                assert row[name] == pytest.approx(value), (key, name)
            elif name not in ("sensor_id", "window_start"):
                assert row[name] == value, (key, name, row[name], value)
    return len(got)


def _fill(sensor_db, project: Path, rows: int) -> list:
    dbs = [sensor_db(project / "data" / "Berlin" / code / "sensor_data.db", sensor_id=f"Berlin_{code}", location="Berlin")
           for code in ("AA11", "BB22")]
    for index, db in enumerate(dbs):
        db.append(rows, anomaly_flag=index)  # one sensor's every row an anomaly: anomaly_count is checked both ways
    return dbs


def _run_once(invocation, settings: UploaderSettings) -> None:
    uploader = Uploader(invocation(settings=settings))
    try:
        assert uploader.run_once()
    finally:
        uploader.close()


def test_windows_spanning_batches_and_lost_state_saves_are_emitted_once_with_the_right_values(project, sensor_db, invocation, lake_rows):
    from uploader.checkpoints import CheckpointStore, checkpoint_path

    settings = UploaderSettings.model_validate(SETTINGS)
    dbs = _fill(sensor_db, project, 130)
    _run_once(invocation, settings)
    store = CheckpointStore(checkpoint_path(project / "state", "default"))
    saved = store._db.execute("SELECT sink, app_id, state FROM windows ORDER BY app_id").fetchall()
    store.close()
    for db in dbs:
        db.append(100)
    _run_once(invocation, settings)
    # A kill -9 between a commit and the state save: one source's saved state is older than the table's
    # position, the other's was never saved. Both are folded again from the edge DB.
    store = CheckpointStore(checkpoint_path(project / "state", "default"))
    store.set_windows(*saved[0])
    store._db.execute("DELETE FROM windows WHERE app_id = ?", (saved[1][1],))
    store.close()
    for db in dbs:
        db.append(100)
    _run_once(invocation, settings)
    assert assert_windows_match(project, lake_rows) == 2 * 5  # 330 s of readings: minutes 0-4 closed


@pytest.mark.slow
def test_kill_9_mid_window_then_restart_emits_each_window_once(project, sensor_db, lake_rows):
    dbs = _fill(sensor_db, project, 1500)
    config = project / "uploader-settings.json"
    config.write_text(json.dumps({"uploader": SETTINGS}))
    argv = [sys.executable, "-m", "uploader", "--sqlite", str(project / "data"), "--project-dir", str(project),
            "--config", str(config)]
    rng = random.Random(7)
    for _ in range(3):
        process = subprocess.Popen([*argv, "--continuous", "--interval", "0.05"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.5, 3.0))
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
        for db in dbs:
            db.append(150)
    final = subprocess.run([*argv, "--once"], capture_output=True, text=True, timeout=240)
    assert final.returncode == 0, final.stderr
    assert assert_windows_match(project, lake_rows) == 2 * 32  # 1950 s of readings: 32 whole minutes closed
