"""Live changes on a running 100-sensor fleet (local runtime), every command as a real process.

The fleet runs its simulators only (`start sensor-…`): the uploaders' own live application reports
through their status files the same way and is tested with the uploader. Readings are checked in the
edge DBs themselves (read-only), so what is asserted is what the lake receives.
"""
from __future__ import annotations

import json
import sqlite3
import time
from datetime import datetime
from pathlib import Path

import pytest

from fleetcore.livesettings import settings_digest
from sensor_manager.layout import ProjectLayout
from sensor_manager.live.reload import read_record
from sensor_manager.live.rollout import choose_sensors
from sensor_manager.plan import load_plan
from sensor_manager.simulator.status_file import SimulatorStatus

from .conftest import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
TIMEOUT = 120

CONFIG = """\
# A live-changes test fleet: 2 x 50 sensors.
project: live-suite
sensors_per_city: 50
runtime: local
simulation:
  readings_per_second: 1  # the rate the tests change
anomalies:
  enabled: false  # only injected anomalies
cities:
  - name: Berlin
  - name: Paris
"""


class Fleet:
    def __init__(self, root: Path):
        self.root = root
        self.layout = ProjectLayout.at(root)
        self.config = root / "sensor-manager.yaml"

    def cli(self, *args: str, timeout: float = TIMEOUT):
        return run_cli("--project-dir", str(self.root), *args, timeout=timeout)

    def ok(self, *args: str):
        run = self.cli(*args)
        assert run.code == 0 and not run.crash, f"{args} -> {run.code}\n{run.stdout}\n{run.stderr}"
        return run

    def rows(self, sensor_id: str, after_seq: int = 0) -> list[tuple]:
        plan = load_plan(self.layout)
        path = self.root / plan.sensor(sensor_id).db_path
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT seq, timestamp, firmware_version, anomaly_type FROM sensor_readings WHERE seq > ?"
                                " ORDER BY seq", (after_seq,)).fetchall()
        finally:
            conn.close()

    def statuses(self) -> dict:
        return {s["name"]: s for s in json.loads(self.ok("status", "--json").stdout)["services"]}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    root = tmp_path_factory.mktemp("live-fleet")
    (root / "sensor-manager.yaml").write_text(CONFIG)
    fleet = Fleet(root)
    fleet.ok("start", "sensor-berlin", "sensor-paris", "--wait", "--no-diagnostics")
    try:
        yield fleet
    finally:
        fleet.cli("stop")


def _ms(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp() * 1000


def _wait(predicate, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


def _first_spaced(rows: list[tuple], spacing_ms: float) -> tuple | None:
    """The first row from which readings follow `spacing_ms` apart (three gaps in a row), if any."""
    times = [_ms(r[1]) for r in rows]
    for i in range(len(times) - 3):
        if all(abs(times[j + 1] - times[j] - spacing_ms) <= 1 for j in range(i, i + 3)):
            return rows[i]
    return None


def test_rate_follows_a_set_within_two_seconds_and_back(fleet):
    sensor = load_plan(fleet.layout).sensors[0].sensor_id
    before = fleet.rows(sensor)[-1][0]
    fleet.ok("set", "simulation.readings_per_second=50")
    changed_ms = fleet.config.stat().st_mtime * 1000
    edited = fleet.config.read_text()
    assert "readings_per_second: 50 # the rate the tests change" in edited  # comments and layout kept
    assert edited.replace("50 #", "1  #") == CONFIG
    fast = _wait(lambda: _first_spaced(fleet.rows(sensor, before), 20), "rows 20 ms apart")
    assert _ms(fast[1]) - changed_ms < 2000

    before = fleet.rows(sensor)[-1][0]
    fleet.ok("set", "simulation.readings_per_second=1")
    changed_ms = fleet.config.stat().st_mtime * 1000
    slow = _wait(lambda: _first_spaced(fleet.rows(sensor, before), 1000), "rows 1 s apart")
    assert _ms(slow[1]) - changed_ms < 2000
    for city in ("berlin", "paris"):
        status = SimulatorStatus.read(fleet.layout.status_dir / f"sensor-{city}.json")
        settings = fleet.layout.state / "simulator-settings.json"
        assert status.applied_settings.digest == settings_digest(settings.read_bytes())
        assert status.rejected_settings is None


def test_bad_values_and_keys_are_refused_before_anything_is_written(fleet):
    text = fleet.config.read_text()
    for assignment, message in [("simulation.readings_per_second=-1", "simulation.readings_per_second"),
                                ("simulation.no_such_key=1", "no_such_key"),
                                ("simulation.commit_interval_seconds=2", "not reloadable"),
                                ("rate", "KEY=VALUE")]:
        run = fleet.cli("set", assignment)
        assert run.code == 2 and message in run.stderr and "Traceback" not in run.stderr, (assignment, run.stderr)
        assert fleet.config.read_text() == text


def test_an_invalid_edit_is_rejected_and_the_fleet_keeps_running(fleet):
    settings = fleet.layout.state / "simulator-settings.json"
    kept = settings.read_bytes()
    text = fleet.config.read_text()
    fleet.config.write_text(text.replace("readings_per_second: 1 ", "readings_per_second: -1 "))
    try:
        record = _wait(lambda: (r := read_record(fleet.layout)) and r.rejected and r, "the rejection")
        assert "simulation.readings_per_second" in record.errors[0]
        assert settings.read_bytes() == kept
        refused = fleet.cli("reload")
        assert refused.code == 2 and "change rejected" in refused.stderr and "Traceback" not in refused.stderr
        status = fleet.ok("status")
        assert "config change rejected" in status.stdout and "readings_per_second" in status.stdout
        diagnostics = json.loads(fleet.cli("diagnostics", "--json").stdout)
        reload_check = next(c for c in diagnostics["checks"] if c["name"] == "config reload")
        assert reload_check["status"] == "fail" and "readings_per_second" in reload_check["detail"]
        services = fleet.statuses()
        assert all(s["health"] == "healthy" for s in services.values() if s["role"] == "sensor")
        sensor = load_plan(fleet.layout).sensors[0].sensor_id
        last = fleet.rows(sensor)[-1][0]
        _wait(lambda: fleet.rows(sensor)[-1][0] >= last + 2, "rows after the rejected edit")
    finally:
        fleet.config.write_text(text)
    _wait(lambda: not read_record(fleet.layout).rejected, "the restored config accepted")
    assert "every running service applied it" in fleet.ok("reload").stderr


def test_rollout_switches_exactly_the_chosen_fifth_and_undo_restores(fleet):
    plan = load_plan(fleet.layout)
    old = {s.sensor_id: s.firmware_version for s in plan.sensors}
    chosen = {s.sensor_id for s in choose_sensors(plan, "1.6.0", percent=20)}
    assert len(chosen) == 20
    record = json.loads(fleet.ok("rollout", "firmware", "--to", "1.6.0", "--percent", "20", "--json").stdout)
    assert set(record["sensors"]) == chosen
    assert all(entry["seq"] is not None and entry["at"] for entry in record["sensors"].values())
    stored = load_plan(fleet.layout)
    assert {s.sensor_id for s in stored.sensors if s.firmware_version == "1.6.0"} == chosen
    assert stored.rollouts[-1]["sensors"] == record["sensors"]

    for sensor_id in plan.sensors:
        sid = sensor_id.sensor_id
        _wait(lambda sid=sid: fleet.rows(sid)[-1][0] > record["sensors"].get(sid, {}).get("seq", 0) + 1, f"rows of {sid}")
        rows = fleet.rows(sid)
        if sid in chosen:
            switch = record["sensors"][sid]["seq"]
            assert {r[2] for r in rows if r[0] < switch} == {old[sid]}
            assert {r[2] for r in rows if r[0] >= switch} == {"1.6.0"}
        else:
            assert {r[2] for r in rows} == {old[sid]}

    undo = json.loads(fleet.ok("rollout", "undo", "--json").stdout)
    assert undo["kind"] == "undo" and set(undo["sensors"]) == chosen
    assert {s.sensor_id: s.firmware_version for s in load_plan(fleet.layout).sensors} == old
    for sid in chosen:
        back = undo["sensors"][sid]["seq"]
        _wait(lambda sid=sid, back=back: fleet.rows(sid)[-1][0] > back, f"rows of {sid} after the undo")
        assert {r[2] for r in fleet.rows(sid, back - 1)} == {old[sid]}
    listed = json.loads(fleet.ok("rollout", "status", "--json").stdout)["rollouts"]
    assert [r["kind"] for r in listed] == ["rollout", "undo"]
    nothing = fleet.cli("rollout", "undo")
    assert nothing.code == 2 and "no rollout to undo" in nothing.stderr


def test_an_injected_anomaly_shows_in_query_within_two_seconds(fleet):
    berlin = [s.sensor_id for s in load_plan(fleet.layout).sensors if s.city == "Berlin"]
    run = json.loads(fleet.ok("inject", "anomaly", "--city", "Berlin", "--type", "spike", "--duration", "5s", "--json").stdout)
    assert set(run["sensor_ids"]) == set(berlin) and run["not_applied_by"] == []
    requested = run["requested_at_epoch"] * 1000
    for sid in berlin[:5]:  # the episode starts at once; its rows reach the DB with the sensor's next commit
        flagged = _wait(lambda sid=sid: [r for r in fleet.rows(sid) if r[3] == "spike"], f"spike rows of {sid}")
        assert _ms(flagged[0][1]) - requested < 2000
    query = json.loads(fleet.ok("query", "--sensor-id", berlin[0], "--limit", "20", "--json").stdout)
    spikes = [r for r in query["rows"] if r["anomaly_type"] == "spike"]
    assert spikes and all(r["anomaly_flag"] == 1 for r in spikes)
    paris = next(s.sensor_id for s in load_plan(fleet.layout).sensors if s.city == "Paris")
    assert not any(r[3] for r in fleet.rows(paris))


@pytest.mark.parametrize(("argv", "message"), [
    (["inject", "anomaly", "--type", "bogus", "--city", "Berlin"], "--type 'bogus'"),
    (["inject", "anomaly", "--type", "spike"], "--sensor-id or --city"),
    (["inject", "anomaly", "--type", "spike", "--city", "Atlantis"], "Atlantis"),
    (["rollout", "firmware", "--to", "1.6.0", "--percent", "0"], "--percent"),
    (["rollout", "firmware", "--to", "1.6 beta"], "--to"),
    (["rollout", "firmware", "--to", "1.6.0", "--sensor-id", "Nowhere_X"], "Nowhere_X"),
])
def test_bad_live_requests_exit_2_with_one_line(fleet, argv, message):
    plan_before = fleet.layout.plan_file.read_bytes()
    run = fleet.cli(*argv)
    assert run.code == 2 and message in run.stderr and run.stderr.startswith("error: ") and "Traceback" not in run.stderr
    assert fleet.layout.plan_file.read_bytes() == plan_before
