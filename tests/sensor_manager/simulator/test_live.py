"""A running simulation follows its live directory: settings, identities from the plan, anomaly injections."""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import replace

import pytest

from fleetcore.atomicfiles import write_atomic
from fleetcore.livesettings import settings_digest
from sensor_manager.simulator.live import INJECTIONS_FILE, PLAN_FILE, SETTINGS_FILE, parse_settings, restart_keys
from sensor_manager.simulator.runner import Simulation
from sensor_manager.simulator.settings import AnomalySettings
from sensor_manager.simulator.status_file import SimulatorStatus

from .conftest import make_options, make_spec

QUIET = AnomalySettings(enabled=False)


class Running:
    """A Simulation on a thread, stopped and closed by `stop()`."""

    def __init__(self, tmp_path, *, rate=1.0, sensors=1):
        self.live = tmp_path / "live"
        self.live.mkdir()
        self.status_file = tmp_path / "status.json"
        self.specs = [make_spec(tmp_path / "data", sensor_id=f"Berlin_S{i:03d}", seed=i) for i in range(sensors)]
        self.options = replace(make_options(rate=rate, status_file=self.status_file, anomalies=QUIET,
                                            status_interval_seconds=0.2), live_dir=self.live)
        self.write_settings(self.options.document())
        self.stop_event = threading.Event()
        self.simulation = Simulation(self.specs, self.options, self.stop_event)
        self.simulation.open()
        self.thread = threading.Thread(target=self.simulation.run)
        self.thread.start()

    def write_settings(self, document) -> str:
        data = json.dumps(document).encode()
        write_atomic(self.live / SETTINGS_FILE, data)
        return settings_digest(data)

    def status(self) -> SimulatorStatus | None:
        return SimulatorStatus.read(self.status_file)

    def stop(self):
        self.stop_event.set()
        self.thread.join(30)
        self.simulation.close()

    def rows(self, index=0):
        conn = sqlite3.connect(self.specs[index].directory / "sensor_data.db")
        try:
            return conn.execute("SELECT seq, timestamp, firmware_version, anomaly_flag, anomaly_type FROM sensor_readings"
                                " ORDER BY seq").fetchall()
        finally:
            conn.close()


@pytest.fixture
def running(tmp_path):
    started = []

    def start(**kwargs) -> Running:
        run = Running(tmp_path, **kwargs)
        started.append(run)
        return run

    yield start
    for run in started:
        run.stop()


def _epoch_ms(timestamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(timestamp).timestamp() * 1000


def test_a_new_rate_applies_to_every_sensor_and_is_reported_by_digest(running, wait_until):
    run = running(rate=1.0, sensors=2)
    first = wait_until(lambda: run.status() and run.status().applied_settings, what="the initial settings")
    document = run.options.document()
    document["simulation"]["readings_per_second"] = 50
    written_at_ms = time.time() * 1000
    digest = run.write_settings(document)
    assert digest != first.digest
    wait_until(lambda: run.status().applied_settings.digest == digest, what="the new settings applied")
    wait_until(lambda: len(run.rows(1)) > 60, what="rows at the new rate")
    for index in range(2):
        rows = run.rows(index)
        times = [_epoch_ms(r[1]) for r in rows]
        fast = next(i for i in range(1, len(times)) if times[i] - times[i - 1] < 25)
        # Readings follow 20 ms apart from within 2 s of the change on.
        assert times[fast] - written_at_ms < 2000
        assert all(abs(b - a - 20) <= 1 for a, b in zip(times[fast:], times[fast + 1:], strict=False))
    assert run.status().rejected_settings is None


def test_an_invalid_settings_file_is_refused_whole_and_the_rate_kept(running, wait_until):
    run = running(rate=5.0)
    wait_until(lambda: run.status() and run.status().applied_settings, what="the initial settings")
    applied = run.status().applied_settings
    document = run.options.document()
    document["simulation"]["readings_per_second"] = -1
    document["anomalies"]["probability"] = 0.5  # valid, but the file is refused as a whole
    digest = run.write_settings(document)
    status = wait_until(lambda: (s := run.status()).rejected_settings and s, what="the refusal")
    assert status.rejected_settings.digest == digest
    assert any("readings_per_second" in e for e in status.rejected_settings.errors)
    assert status.applied_settings == applied
    assert run.simulation.options.rate == 5.0 and run.simulation.options.anomalies.probability == QUIET.probability
    assert status.state == "running"


def test_a_key_that_needs_a_restart_is_refused(running, wait_until):
    run = running()
    wait_until(lambda: run.status() and run.status().applied_settings, what="the initial settings")
    document = run.options.document()
    document["simulation"]["commit_interval_seconds"] = 5
    document["simulation"]["readings_per_second"] = 3
    run.write_settings(document)
    status = wait_until(lambda: (s := run.status()).rejected_settings and s, what="the refusal")
    assert status.rejected_settings.errors == ["needs restart: simulation.commit_interval_seconds"]
    assert run.simulation.options.rate == 1.0


def test_restart_keys_names_only_keys_outside_the_reloadable_table():
    before = {"simulation": {"readings_per_second": 1, "commit_max_rows": 10}, "anomalies": {"probability": 0.1}}
    after = {"simulation": {"readings_per_second": 9, "commit_max_rows": 11}, "anomalies": {"probability": 0.3}}
    assert restart_keys(before, after) == ["simulation.commit_max_rows"]


def test_parse_settings_lists_every_problem():
    with pytest.raises(ValueError) as caught:
        parse_settings(json.dumps({"simulation": {"readings_per_second": 0}, "anomalies": {"probability": 2},
                                   "extra": {}}).encode())
    message = str(caught.value)
    assert "extra: unknown section" in message and "simulation.readings_per_second" in message
    assert "anomalies.probability" in message


def test_a_changed_identity_in_the_plan_applies_from_a_reported_seq(running, wait_until):
    run = running(rate=20.0)
    wait_until(lambda: len(run.rows()) > 10, what="rows before the switch")
    sensor = run.specs[0].identity
    planned = {"sensors": [{**{k: getattr(sensor, k) for k in ("sensor_id", "latitude", "longitude", "timezone",
                                                                  "manufacturer", "model", "serial_number",
                                                                  "manufacture_date", "deployment_type",
                                                                  "installation_date", "height_meters",
                                                                  "orientation_degrees", "instance_id",
                                                                  "sensor_type", "seed")},
                            "city": sensor.location, "safe_city": "Berlin", "code": "S000", "index": 0,
                            "db_path": "data/Berlin/S000/sensor_data.db", "firmware_version": "1.6.0"}]}
    write_atomic(run.live / PLAN_FILE, json.dumps(planned))
    entry = wait_until(lambda: (e := run.status().sensors[sensor.sensor_id]).firmware_version == "1.6.0" and e,
                       what="the switch reported")
    wait_until(lambda: run.rows()[-1][0] > entry.identity_since_seq + 10, what="rows after the switch")
    rows = run.rows()
    assert {r[2] for r in rows if r[0] < entry.identity_since_seq} == {sensor.firmware_version}
    assert {r[2] for r in rows if r[0] >= entry.identity_since_seq} == {"1.6.0"}
    written = json.loads((run.specs[0].directory / "identity.json").read_text())
    assert written["device_info"]["firmware_version"] == "1.6.0"


@pytest.mark.parametrize("kind", ["spike", "noise", "trend"])
def test_an_injected_anomaly_labels_the_next_readings(running, wait_until, kind):
    run = running(rate=10.0)
    wait_until(lambda: len(run.rows()) > 5, what="normal rows")
    assert not any(r[3] for r in run.rows())  # anomalies are off
    request = {"id": "inj-1", "sensor_ids": ["Berlin_S000"], "type": kind, "duration_seconds": 2.0,
               "requested_at_epoch": time.time()}
    write_atomic(run.live / INJECTIONS_FILE, json.dumps({"injections": [request]}))
    wait_until(lambda: "inj-1" in run.status().injections, what="the injection reported")
    wait_until(lambda: sum(1 for r in run.rows() if r[3]) >= 10 and not run.rows()[-1][3], what="the episode to end")
    flagged = [r for r in run.rows() if r[3]]
    assert {r[4] for r in flagged} == {kind}
    seqs = [r[0] for r in flagged]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # one episode, no gaps
    assert 10 <= len(seqs) <= 20  # 2 s at 10/s from the request on, less the time until its pickup
