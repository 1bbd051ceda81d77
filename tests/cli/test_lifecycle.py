"""Lifecycle commands through the CLI where no fleet needs to run: refusals, dry runs, stopped projects."""
from __future__ import annotations

import json

import pytest

from sensor_manager.cli import app
from sensor_manager.layout import ProjectLayout
from sensor_manager.runtimes import record_runtime

CONFIG = """\
project: cli-lifecycle
seed: 99
sensors_per_city: 2
runtime: local
cities:
  - name: Amsterdam
  - name: New York
"""


@pytest.fixture
def project(project_dir):
    (project_dir / "sensor-manager.yaml").write_text(CONFIG)
    return project_dir


@pytest.fixture
def cli(runner, project):
    def invoke(*args: str, input: str | None = None):
        result = runner.invoke(app, ["--project-dir", str(project), *args], input=input)
        assert "Traceback" not in result.output + result.stderr
        return result

    return invoke


@pytest.fixture
def planned(cli, project):
    """A project with a stored plan, sensor files and a foreign file (as if it had run and stopped)."""
    assert cli("plan").exit_code == 0
    from sensor_manager.config import load_config
    from sensor_manager.plan import build_plan, save_plan

    layout = ProjectLayout.at(project)
    plan = build_plan(load_config(project / "sensor-manager.yaml", project))
    save_plan(layout, plan)
    for sensor in plan.sensors:
        folder = project / sensor.sensor_dir
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "sensor_data.db").write_bytes(b"not really sqlite")
        (folder / "seq.hwm").write_text("12\n")
    (project / plan.sensors[0].sensor_dir / "field-notes.txt").write_text("mine")
    return plan


def test_status_of_a_project_never_started(cli, project, tree_listing):
    before = tree_listing(project)
    table = cli("status")
    assert table.exit_code == 0
    assert "never started" in table.stdout
    document = json.loads(cli("status", "--json").stdout)
    assert document == {"schema_version": 1, "project": None, "runtime": "local", "fault": None, "config_reload": None,
                        "services": []}
    assert json.loads(cli("ps", "--json").stdout) == document
    assert tree_listing(project) == before


def test_status_of_a_stopped_project_lists_every_planned_service(cli, planned):
    document = json.loads(cli("status", "--json").stdout)
    assert document["project"] == "cli-lifecycle"
    names = [s["name"] for s in document["services"]]
    assert names == ["sensor-amsterdam", "sensor-new-york", "uploader-amsterdam", "uploader-new-york"]
    assert {(s["state"], s["health"], s["pid"]) for s in document["services"]} == {("stopped", "unknown", None)}
    assert document["services"][1]["city"] == "New York"
    assert document["services"][1]["sensors"] == [s.sensor_id for s in planned.sensors if s.city == "New York"]
    table = cli("ps").stdout
    assert "0/4 services running" in table and "uploader-new-york" in table


def test_stop_without_a_running_project_exits_0(cli, project, tree_listing):
    before = tree_listing(project)
    result = cli("stop")
    assert result.exit_code == 0
    assert result.stderr.strip() == "Already stopped: the fleet."
    assert tree_listing(project) == before


def test_reset_without_yes_and_without_a_terminal_exits_2_and_changes_nothing(cli, project, planned, tree_listing):
    before = tree_listing(project)
    result = cli("reset")
    assert result.exit_code == 2
    assert "this needs confirmation; rerun with --yes (no terminal to ask on); nothing changed" in result.stderr
    assert tree_listing(project) == before


def test_reset_dry_run_lists_what_would_go_and_the_old_epoch_rows_of_external_sinks(cli, project, planned, tree_listing, tmp_path):
    shared = tmp_path / "shared-lake" / "sensor_readings"
    config = CONFIG + f"uploader:\n  sinks:\n    delta:\n      path: {shared}\n"
    (project / "sensor-manager.yaml").write_text(config)
    before = tree_listing(project)
    result = cli("reset", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert f"then start fleet_epoch {planned.fleet_epoch + 1}" in result.stdout
    assert str(project / planned.sensors[0].sensor_dir / "sensor_data.db") in result.stdout
    assert f"delta: rows of fleet_epoch {planned.fleet_epoch} in {shared}" in result.stdout
    assert "field-notes.txt" not in result.stdout
    assert tree_listing(project) == before


def test_start_dry_run_runs_preflight_and_changes_nothing(cli, project, tree_listing):
    before = tree_listing(project)
    result = cli("start", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "Would start 4 of 4 services" in result.stdout
    assert "✓ disk space" in result.stderr and "✓ paths writable" in result.stderr
    assert tree_listing(project) == before


def test_start_with_a_cosmos_sink_lacking_endpoint_and_key_exits_2_before_touching_disk(cli, project, tree_listing):
    config = project / "sensor-manager.yaml"
    config.write_text(CONFIG + "uploader:\n  sinks:\n    cosmos:\n      enabled: true\n")
    before = tree_listing(project)
    result = cli("start")
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert ("error: preflight: sink credentials: the cosmos sink has no endpoint: set uploader.sinks.cosmos.endpoint or "
            "COSMOS_ENDPOINT; the cosmos sink has no key: set COSMOS_KEY (or uploader.sinks.cosmos.key)") in result.stderr
    assert tree_listing(project) == before


def test_start_with_a_fleet_flag_that_contradicts_the_plan_exits_2_unchanged(cli, project, planned, tree_listing):
    before = tree_listing(project)
    result = cli("start", "--seed", "100")
    assert result.exit_code == 2
    assert "preflight: plan matches config" in result.stderr and "seed: 99 -> 100" in result.stderr
    assert "Rerun with --replan" in result.stderr
    assert tree_listing(project) == before


def test_start_without_fleet_flags_keeps_the_stored_plan_and_says_the_config_differs(cli, project, planned, tree_listing):
    (project / "sensor-manager.yaml").write_text(CONFIG.replace("seed: 99", "seed: 100"))
    before = tree_listing(project)
    result = cli("start", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "warning: the config differs from the stored plan (seed: 99 -> 100" in result.stderr
    assert "✓ plan matches config: 4 sensors in 2 cities; the stored plan runs" in result.stderr
    assert tree_listing(project) == before


def test_a_runtime_conflicting_with_the_recorded_one_exits_2(cli, project, planned):
    record_runtime(ProjectLayout.at(project), "docker", "test")
    result = cli("status", "--runtime", "local")
    assert result.exit_code == 2
    assert "runs on the docker runtime" in result.stderr and "--runtime local conflicts" in result.stderr


def test_docker_runtime_without_an_engine_exits_3(cli, project, tree_listing, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    monkeypatch.setenv("PATH", "/nonexistent")
    before = tree_listing(project)
    result = cli("start", "--runtime", "docker")
    assert result.exit_code == 3, result.stderr
    assert result.stderr.startswith("error: ")
    assert tree_listing(project) == before


def test_unknown_target_is_a_usage_error_with_a_suggestion(cli, planned):
    result = cli("stop", "uploader-amsterdan")
    assert result.exit_code == 2
    assert "unknown service, city or sensor 'uploader-amsterdan'. Did you mean 'uploader-amsterdam'?" in result.stderr


def test_logs_of_a_stopped_project(cli, project, planned):
    logs = ProjectLayout.at(project).logs
    logs.mkdir(parents=True)
    (logs / "sensor-amsterdam.log").write_text(
        "2025-01-01T10:00:00.000000Z first\n2025-01-01T10:00:02.000000Z third\n")
    (logs / "uploader-amsterdam.log").write_text("2025-01-01T10:00:01.000000Z second\n")
    merged = cli("logs", "Amsterdam")
    assert merged.exit_code == 0
    assert [line.split(" | ")[1] for line in merged.stdout.splitlines()] == ["first", "second", "third"]
    tail = cli("logs", "--tail", "1", "-t", "sensor-amsterdam").stdout.splitlines()
    assert tail == ["sensor-amsterdam | 2025-01-01T10:00:02.000000Z third"]
    since = cli("logs", "--since", "2025-01-01T10:00:01Z", "--no-follow").stdout
    assert "first" not in since and "second" in since and "third" in since
    ndjson = [json.loads(line) for line in cli("logs", "--json", "--tail", "1", "uploader-amsterdam").stdout.splitlines()]
    assert ndjson == [{"service": "uploader-amsterdam", "timestamp": "2025-01-01T10:00:01.000000Z", "text": "second"}]


def test_logs_with_a_bad_since_exits_2(cli, planned):
    result = cli("logs", "--since", "yesterday-ish")
    assert result.exit_code == 2
    assert "--since 'yesterday-ish'" in result.stderr


def test_cleanup_of_a_clean_project_finds_nothing(cli, project, planned, tree_listing):
    before = tree_listing(project)
    result = cli("cleanup", "--dry-run")
    assert result.exit_code == 0 and "No leftovers." in result.stderr
    assert cli("cleanup").exit_code == 0
    assert tree_listing(project) == before


def test_reset_asks_on_a_terminal_and_a_no_changes_nothing(project, planned, tree_listing):
    import os
    import pty
    import subprocess
    import sys

    before = tree_listing(project)
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "sensor_manager", "--project-dir", str(project), "reset"],
                               stdin=follower, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    seen = b""
    while b"[y/N]" not in seen:
        chunk = os.read(leader, 1024)
        assert chunk, seen
        seen += chunk
    os.write(leader, b"n\n")
    assert process.wait(timeout=60) == 2
    try:
        while chunk := os.read(leader, 1024):
            seen += chunk
    except OSError:  # the terminal closes with the process
        pass
    os.close(leader)
    assert b"reset deletes" in seen and b"not confirmed; nothing changed" in seen
    assert tree_listing(project) == before


def test_status_summary_counts_only_services_with_a_process():
    from sensor_manager.observe.service_status import StatusReport
    from sensor_manager.runtimes.base import ServiceStatus

    services = [
        ServiceStatus("sensor-a", "sensor", "A", ["A_1"], "running", "healthy", pid=101),
        ServiceStatus("sensor-b", "sensor", "B", ["B_1"], "crashloop", "unknown", restarts=7),  # between attempts
        ServiceStatus("uploader-a", "uploader", "A", [], "restarting", "unknown", restarts=1),
        ServiceStatus("uploader-b", "uploader", "B", [], "crashloop", "starting", restarts=5, pid=102),  # up again
    ]
    assert StatusReport("p", "local", services).summary == "2/4 services running, 1 healthy (local runtime)"
