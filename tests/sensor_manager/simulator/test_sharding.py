"""More sensors than one process may hold: forked shards, one merged status file."""
from __future__ import annotations

import json
import threading

import pytest

from fleetcore.errors import ResourceLimitError
from sensor_manager.simulator.db import read_high_water
from sensor_manager.simulator.runner import Simulation
from sensor_manager.simulator.sharding import run_sharded

from .conftest import make_options, make_spec


def test_sensors_beyond_capacity_run_in_shards(tmp_path):
    specs = [make_spec(tmp_path / "data", sensor_id=f"Berlin_S{i:03d}", seed=i) for i in range(5)]
    status = tmp_path / "status" / "sensor-berlin.json"
    summary = run_sharded(specs, make_options(rate=1.0, backfill=120, duration=0.05, status_file=status),
                          threading.Event(), capacity=2)
    assert summary.sensors == 5
    document = json.loads(status.read_text())
    assert document["shards"] == 3 and document["state"] == "stopped" and document["fatal_error"] is None
    assert sorted(document["sensors"]) == sorted(s.identity.sensor_id for s in specs)
    written = sum(read_high_water(s.directory / "sensor_data.db").max_seq for s in specs)
    assert written == summary.rows_written > 5 * 100
    assert len(list(status.parent.glob("sensor-berlin.shard-*.json"))) == 3


def test_one_process_refuses_more_sensors_than_open_files_allow(tmp_path, monkeypatch):
    monkeypatch.setattr("sensor_manager.simulator.runner.sensors_per_process", lambda soft: 1)
    specs = [make_spec(tmp_path, sensor_id=f"Berlin_S{i:03d}") for i in range(2)]
    simulation = Simulation(specs, make_options())
    with pytest.raises(ResourceLimitError, match="RLIMIT_NOFILE"):
        simulation.open()
    assert not any(tmp_path.iterdir())  # refused before touching anything


def test_simulate_shards_when_the_open_file_limit_is_low(project_dir, write_config):
    import resource
    import subprocess
    import sys

    from sensor_manager.simulator.limits import FDS_PER_SENSOR, RESERVED_FDS

    config = write_config(sensors_per_city=3)  # two cities: 6 sensors
    limit = RESERVED_FDS + 2 * FDS_PER_SENSOR  # room for two sensors per process

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    result = subprocess.run(
        [sys.executable, "-m", "sensor_manager", "--project-dir", str(project_dir), "simulate", "--config", str(config),
         "--rate", "1", "--backfill", "60s", "--duration", "0.5", "--json"],
        preexec_fn=low_limit, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sensors"] == 6
    status = json.loads((project_dir / "state/status/sensor-all.json").read_text())
    assert status["shards"] == 3 and len(status["sensors"]) == 6
