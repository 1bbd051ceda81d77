"""Anomalies fire through the real config path, at the configured fraction, with variant modifiers."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sensor_manager.cli import app
from sensor_manager.simulator.anomalies import anomaly_profile, variant_keys
from sensor_manager.simulator.db import open_readonly
from sensor_manager.simulator.settings import ANOMALY_TYPES, AnomalySettings, DeviceSettings

BACKFILL = "70d"  # at one reading per 30 s: ~201,600 readings


def _devices(manufacturer: str, model: str, firmware: str) -> dict:
    return {"manufacturers": [{"name": manufacturer}], "models": [{"name": model}],
            "firmware_versions": [{"name": firmware}]}


def _run(runner, project_dir, write_config, devices: dict, mode: str = "skip") -> tuple[dict, list[tuple]]:
    config = write_config(devices=devices, cities=[{"name": "Berlin"}],
                          anomalies={"probability": 0.05, "missing_data_mode": mode})
    status = project_dir / "status.json"
    result = runner.invoke(app, ["--project-dir", str(project_dir), "simulate", "--config", str(config),
                                 "--rate", str(1 / 30), "--backfill", BACKFILL, "--duration", "0.01",
                                 "--status-file", str(status), "--json"])
    assert result.exit_code == 0, result.output
    entry = next(iter(json.loads(status.read_text())["sensors"].values()))
    rows = open_readonly(entry["db_path"]).execute(
        "SELECT anomaly_flag, anomaly_type, status_code, temperature FROM sensor_readings ORDER BY id").fetchall()
    return entry, rows


def _fraction(entry: dict, rows: list[tuple]) -> float:
    flagged = sum(r[0] for r in rows)
    return (flagged + entry["skipped_readings"]) / (len(rows) + entry["skipped_readings"])


def test_neutral_variant_hits_the_configured_fraction(runner, project_dir, write_config):
    entry, rows = _run(runner, project_dir, write_config, _devices("EnvSense", "TempVibe-2000", "2.0.1"))
    assert len(rows) + entry["skipped_readings"] >= 200_000
    assert abs(_fraction(entry, rows) - 0.05) <= 0.005
    kinds = {r[1] for r in rows if r[0]}
    assert kinds == set(ANOMALY_TYPES) - {"missing_data"}  # skipped readings leave no row
    assert entry["skipped_readings"] > 0
    assert all(r[2] == r[0] for r in rows)  # status_code follows the flag
    flags = np.array([r[0] for r in rows])
    starts = np.flatnonzero(np.diff(flags) == 1)
    assert len(starts) > 1000  # many multi-row episodes, not single-row blips
    trend_runs = _runs(rows, "trend")
    assert max(trend_runs) >= 10


def _runs(rows, kind: str) -> list[int]:
    runs, current = [], 0
    for row in rows:
        if row[1] == kind:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    return runs or [0]


def test_variants_follow_the_modifier_table(runner, project_dir, write_config):
    entry, rows = _run(runner, project_dir, write_config, _devices("SensorTech", "EnvMonitor-3000", "1.4.0"), mode="null")
    expected = 0.05 * 1.2 * 1.5  # SensorTech +20 %, firmware 1.4.x x1.5
    assert entry["skipped_readings"] == 0
    assert abs(_fraction(entry, rows) - expected) <= 0.1 * expected
    missing = [r for r in rows if r[1] == "missing_data"]
    assert missing and all(r[3] is None for r in missing)


def test_modifier_table_lookups():
    devices = DeviceSettings()
    settings = AnomalySettings(probability=0.1)
    assert variant_keys("SensorTech", "EnvMonitor-5000", "1.5.2") == ["SensorTech", "EnvMonitor-5000", "1.5.2", "1.5.x", "1.x"]
    assert variant_keys("SensorTech", "EnvMonitor-3000", "1.4") == ["SensorTech", "EnvMonitor-3000", "1.4", "1.4.x", "1.x"]
    profile = anomaly_profile(settings, devices, "DataSense", "EnvMonitor-5000", "1.5.2")
    assert profile.fraction == pytest.approx(0.1 * 0.8 * 0.7)
    weights = dict(zip(profile.types, profile.weights, strict=True))
    assert weights["spike"] == pytest.approx(1.5 * weights["trend"])
    neutral = anomaly_profile(settings, devices, "EnvSense", "TempVibe-2000", "2.0.1")
    assert neutral.fraction == pytest.approx(0.1) and set(neutral.weights) == {1.0}
    disabled = anomaly_profile(AnomalySettings(enabled=False), devices, "EnvSense", "TempVibe-2000", "2.0.1")
    assert disabled.start_probability(1.0) == 0.0


def test_start_probability_gives_the_fraction():
    profile = anomaly_profile(AnomalySettings(probability=0.2), DeviceSettings(), "EnvSense", "TempVibe-2000", "2.0.1")
    rate = 0.5
    p = profile.start_probability(rate)
    mean_length = float(np.mean(profile.episode_readings(rate)))
    assert mean_length / (mean_length + (1 - p) / p) == pytest.approx(0.2)
