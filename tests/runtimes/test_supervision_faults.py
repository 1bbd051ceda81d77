"""A real local fleet whose processes are stopped or killed behind its back (issue 10, finding 9).

A SIGSTOPped sensor is reported `hung` and restarted after its health deadline; a supervisor killed
with kill -9 is reported by `status` and fails `diagnostics` with the remedy, until `start`.
"""
from __future__ import annotations

import json
import os
import signal

import psutil
import pytest

from fleetcore.statusfiles import read_json_object
from sensor_manager.cli import app
from sensor_manager.layout import ProjectLayout
from sensor_manager.runtimes import supervisor as sv
from sensor_manager.runtimes.logfiles import read_lines

pytestmark = pytest.mark.slow

CONFIG = """\
project: faults
seed: 21
sensors_per_city: 1
runtime: local
simulation:
  readings_per_second: 5
  status_interval_seconds: 0.5
cities:
  - name: Berlin
uploader:
  interval_seconds: 1
"""
HEALTH_DEADLINE_SECONDS = 6  # instead of 120 s, through the spec's policy


@pytest.fixture
def cli(runner, project_dir):
    (project_dir / "sensor-manager.yaml").write_text(CONFIG)
    layout = ProjectLayout.at(project_dir)
    layout.ensure_state()
    sv.write_json_atomic(sv.spec_path(layout), {"policy": {"health_deadline_seconds": HEALTH_DEADLINE_SECONDS}})

    def invoke(*args: str):
        result = runner.invoke(app, ["--project-dir", str(project_dir), *args])
        assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
        return result

    yield invoke
    assert invoke("stop").exit_code == 0  # a still stopped sensor ignores SIGTERM and is killed after the grace


def _sensor(cli) -> dict:
    document = json.loads(cli("status", "--json").stdout)
    return next(s for s in document["services"] if s["role"] == "sensor")


def test_a_hung_sensor_is_reported_and_restarted(cli, project_dir, wait_until):
    assert cli("start", "--wait", "--wait-timeout", "90").exit_code == 0
    pid = _sensor(cli)["pid"]
    os.kill(pid, signal.SIGSTOP)
    wait_until(lambda: _sensor(cli)["health"] == "hung", what="status to say hung")
    restarted = wait_until(lambda: (s := _sensor(cli))["pid"] not in (None, pid) and s, timeout=60, what="the hung sensor to be restarted")
    assert restarted["restarts"] >= 1  # a loaded host may find the new one slow to report too (6 s deadline)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    log = [line.text for line in read_lines(ProjectLayout.at(project_dir).logs / "sensor-berlin.log")]
    assert any("Service is hung: no status update for" in text for text in log)
    wait_until(lambda: _sensor(cli)["health"] == "healthy", timeout=60, what="the new sensor to be healthy")


def test_a_killed_supervisor_is_a_fault_until_start(cli, project_dir, wait_until):
    assert cli("start", "--wait", "--wait-timeout", "90").exit_code == 0
    state = read_json_object(sv.state_path(ProjectLayout.at(project_dir)))
    children = [psutil.Process(s["pid"]) for s in state["services"].values()]
    os.kill(state["supervisor"]["pid"], signal.SIGKILL)
    wait_until(lambda: not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children), what="the services to end")

    status = cli("status")
    assert status.exit_code == 0
    assert "0/2 services running" in status.stdout
    assert f"fault: supervisor died: pid {state['supervisor']['pid']}" in status.stdout
    assert "its 2 services are down; `start` brings them back" in status.stdout
    assert json.loads(cli("status", "--json").stdout)["fault"].startswith("supervisor died")
    diagnostics = cli("diagnostics")
    assert diagnostics.exit_code == 1
    line = next(line for line in diagnostics.stdout.splitlines() if "supervision" in line)
    assert "✗" in line and "supervisor died" in line and "`start` brings them back" in line

    assert cli("start", "--wait", "--wait-timeout", "90").exit_code == 0
    assert json.loads(cli("status", "--json").stdout)["fault"] is None
