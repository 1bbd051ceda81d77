"""Stages switched while a real simulator writes ~200 readings/s and a real uploader process ships them:
every reading lands exactly once, in exactly one stage's output, split at the seq the status records."""
from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from uploader.reload import settings_digest


def _write_settings(path: Path, stage: str) -> str:
    """Replace the settings file (as sensor-manager does: a new file renamed over it); its digest."""
    data = json.dumps({"project": "sensor-demo", "uploader": {"stage": stage, "interval_seconds": 0.2,
                                                        "sinks": {"delta": {"batch_size": 400}}}}).encode()
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return settings_digest(data)


def _status(project: Path) -> dict:
    try:
        return json.loads((project / "state" / "status" / "uploader-berlin.json").read_text())
    except (OSError, ValueError):
        return {}


def _wait_for(condition, timeout: float = 30) -> None:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.05)


def _wait_applied(project: Path, digest: str, timeout: float = 10) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if (_status(project).get("applied_settings") or {}).get("digest") == digest:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"settings {digest} not applied within {timeout} s: {_status(project)}")


@pytest.mark.slow
def test_raw_to_sanitized_and_back_under_load_lands_every_reading_once_in_one_stage(tmp_path, lake_rows):
    project = tmp_path / "sim"
    (project / "state").mkdir(parents=True)
    settings = project / "state" / "uploader-settings.json"
    _write_settings(settings, "raw")
    simulator = subprocess.Popen([sys.executable, "-m", "sensor_manager", "simulate", "--project-dir", str(project),
                                  "--cities", "Berlin", "--sensors-per-city", "2", "--rate", "100", "--duration", "14", "-q"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for(lambda: (project / "state" / "plan.json").exists() and len(list((project / "data").rglob("sensor_data.db"))) == 2)
    uploader_argv = [sys.executable, "-m", "uploader", "--sqlite", str(project / "data" / "Berlin"), "--project-dir",
                     str(project), "--config", str(settings)]
    uploader = subprocess.Popen([*uploader_argv, "--continuous", "--interval", "0.2"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: len([s for s in _status(project).get("sources", []) if s["positions"].get("delta")]) == 2)
        _wait_applied(project, settings_digest(settings.read_bytes()))
        time.sleep(1)
        _wait_applied(project, _write_settings(settings, "sanitized"), timeout=2)  # within the 2 s
        time.sleep(3)
        _wait_applied(project, _write_settings(settings, "raw"), timeout=2)
        time.sleep(2)
        switches = _status(project)["stage_switches"]
    finally:
        assert simulator.wait(timeout=60) == 0, simulator.stderr.read().decode()[-2000:]
        uploader.send_signal(signal.SIGTERM)
        uploader.wait(timeout=60)
    drained = subprocess.run([*uploader_argv, "--once"], capture_output=True, text=True, timeout=120)
    assert drained.returncode == 0, drained.stderr

    assert [(s["sink"], s["from"], s["to"]) for s in switches] == [("delta", "raw", "sanitized"), ("delta", "sanitized", "raw")]
    edge = {}
    for db in (project / "data").rglob("sensor_data.db"):
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            sensor_id, count = con.execute("SELECT min(sensor_id), count(*) FROM sensor_readings").fetchone()
            edge[db.relative_to(project / "data").as_posix()] = (sensor_id, count)
    assert sum(count for _, count in edge.values()) > 2_000
    table = lake_rows(project / "lake" / "sensor_readings")
    keys = Counter(zip(table["sensor_id"].to_pylist(), table["seq"].to_pylist(), strict=True))
    assert max(keys.values()) == 1, "a reading landed twice"
    assert Counter(table["sensor_id"].to_pylist()) == Counter({sensor_id: count for sensor_id, count in edge.values()})
    first, second = (s["positions"] for s in switches)
    assert set(first) == set(second) == set(edge)
    by_source = {source: sensor_id for source, (sensor_id, _) in edge.items()}
    serials = set()
    for db in (project / "data").rglob("sensor_data.db"):
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            serials |= {row[0] for row in con.execute("SELECT DISTINCT serial_number FROM sensor_readings") if row[0]}
    for row in table.select(["sensor_id", "seq", "stage", "latitude", "longitude", "serial_number"]).to_pylist():
        source = next(s for s, sensor_id in by_source.items() if sensor_id == row["sensor_id"])
        expected = "sanitized" if first[source] < row["seq"] <= second[source] else "raw"
        assert row["stage"] == expected, (row, first[source], second[source])
        if expected == "sanitized":
            assert row["serial_number"] not in serials
            assert all(not re.search(r"\.\d{4,}", repr(v)) for v in (row["latitude"], row["longitude"]))
    stages = Counter(table["stage"].to_pylist())
    assert stages["sanitized"] > 100 and stages["raw"] > 100
