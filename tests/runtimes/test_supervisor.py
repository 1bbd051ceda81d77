"""The supervisor with stand-in programs: restarts, crash loops, finished work, stops, detaching, stale records."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import psutil

from sensor_manager.runtimes import supervisor as sv
from sensor_manager.runtimes.logfiles import read_lines
from sensor_manager.runtimes.processes import PROJECT_ENV, ProcessRecord


def test_crashing_child_is_restarted_then_reported_as_crashloop(supervised, programs, wait_until, services_state):
    runtime = supervised({"crash": programs.CRASHER, "ok": programs.TICKER})
    runtime.start(None, None, ["crash", "ok"])
    entry = wait_until(lambda: services_state(runtime).get("crash", {}).get("state") == "crashloop" and services_state(runtime)["crash"], what="crashloop")
    assert entry["restarts"] >= sv.CRASHLOOP_AFTER
    assert entry["exit_code"] == 3
    assert services_state(runtime)["ok"]["state"] == "running"
    log = [line.text for line in read_lines(runtime.log_path("crash"))]
    assert "about to fail" in log
    assert any("crash-looping" in text for text in log)


def test_child_that_finishes_is_not_restarted(supervised, programs, wait_until, services_state):
    runtime = supervised({"done": programs.FINISHER})
    runtime.start(None, None, ["done"])
    entry = wait_until(lambda: services_state(runtime).get("done", {}).get("exit_code") == 0 and services_state(runtime)["done"], what="exit")
    assert entry["state"] == "stopped"
    assert entry["restarts"] == 0


def test_killed_child_is_restarted_and_targeted_stop_start_restart(supervised, programs, wait_until, services_state):
    runtime = supervised({"a": programs.TICKER, "b": programs.TICKER})
    runtime.start(None, None, ["a", "b"])
    first = wait_until(lambda: services_state(runtime).get("a", {}).get("pid"), what="pid of a")
    os.kill(first, signal.SIGKILL)
    second = wait_until(lambda: (p := services_state(runtime)["a"].get("pid")) not in (None, first) and p, what="restart of a")
    assert services_state(runtime)["a"]["restarts"] == 1

    assert runtime.stop(["a"]) is True
    assert services_state(runtime)["a"]["state"] == "stopped"
    assert not psutil.pid_exists(second) or psutil.Process(second).status() == psutil.STATUS_ZOMBIE
    assert services_state(runtime)["b"]["state"] == "running"

    runtime.start(None, None, ["a"])
    third = services_state(runtime)["a"]["pid"]
    assert third not in (None, first, second)
    runtime.restart(["a"])
    assert services_state(runtime)["a"]["pid"] not in (None, third)
    assert services_state(runtime)["a"]["restarts"] == 1  # requested restarts are not failures
    started = [line.text for line in read_lines(runtime.log_path("a")) if "Service started" in line.text]
    assert len(started) == 4


def test_stop_leaves_no_process_even_when_a_child_ignores_sigterm(supervised, programs, wait_until, services_state):
    runtime = supervised({"stubborn": programs.STUBBORN, "a": programs.TICKER}, policy={"stop_grace_seconds": 1})
    runtime.start(None, None, ["stubborn", "a"])
    pids = [wait_until(lambda n=n: services_state(runtime).get(n, {}).get("pid"), what=n) for n in ("stubborn", "a")]
    supervisor = runtime.supervisor()
    assert runtime.stop(None) is True
    assert runtime.supervisor() is None
    for pid in [*pids, supervisor.pid]:
        assert not ProcessRecord(pid, 0).is_alive() or not psutil.pid_exists(pid)
    assert json.loads(sv.state_path(runtime.layout).read_text())["supervisor"] is None
    assert runtime.stop(None) is False


def test_supervisor_is_detached_from_the_cli(supervised, programs, wait_until, services_state):
    runtime = supervised({"a": programs.TICKER})
    runtime.start(None, None, ["a"])
    supervisor = psutil.Process(runtime.supervisor().pid)
    assert supervisor.ppid() != os.getpid()
    assert os.getsid(supervisor.pid) != os.getsid(0)
    assert supervisor.environ().get(PROJECT_ENV) is None  # the supervisor is not one of the services


def test_second_supervisor_for_the_same_project_refuses(supervised, programs, wait_until, services_state):
    runtime = supervised({"a": programs.TICKER})
    runtime.start(None, None, ["a"])
    result = subprocess.run([sys.executable, "-m", "sensor_manager.runtimes.supervisor", "--project-dir", str(runtime.layout.root)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Another supervisor runs" in result.stderr


def test_stale_pid_record_is_not_trusted_and_cleanup_removes_it(supervised, programs):
    runtime = supervised({"a": programs.TICKER})
    me = ProcessRecord.of(os.getpid())  # a live process, but not a supervisor: start time matches, command line does not
    stale = {"pid": me.pid, "create_time": me.create_time, "cmdline": ["python", "-m", "sensor_manager.runtimes.supervisor"]}
    sv.write_json_atomic(sv.state_path(runtime.layout), {"supervisor": stale, "services": {"a": {"state": "running", "pid": me.pid}}})
    assert runtime.is_running() is False
    assert all(s.state == "stopped" for s in runtime.status())
    found = runtime.cleanup(dry_run=True)
    assert any("stale supervisor record" in item for item in found)
    assert sv.state_path(runtime.layout).exists()
    runtime.cleanup(dry_run=False)
    assert not sv.state_path(runtime.layout).exists()
    assert psutil.pid_exists(os.getpid())


def test_cleanup_ends_orphans_it_can_prove_are_its_own(supervised, project_dir):
    runtime = supervised({})
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
    ours = subprocess.Popen(sleeper, env={**os.environ, PROJECT_ENV: str(runtime.layout.root)})
    other = subprocess.Popen(sleeper, env={**os.environ, PROJECT_ENV: str(project_dir.parent / "elsewhere")})
    try:
        found = runtime.cleanup(dry_run=False)
        assert any(f"pid {ours.pid}" in item for item in found)
        assert ours.wait(timeout=30) is not None
        assert other.poll() is None
    finally:
        for process in (ours, other):
            process.kill()
            process.wait()


def test_services_do_not_outlive_a_killed_supervisor_and_start_recovers(supervised, programs, wait_until, services_state):
    runtime = supervised({"a": programs.TICKER})
    runtime.start(None, None, ["a"])
    child = wait_until(lambda: services_state(runtime).get("a", {}).get("pid"), what="pid of a")
    record = ProcessRecord.of(child)
    os.kill(runtime.supervisor().pid, signal.SIGKILL)
    wait_until(lambda: not record.is_alive(), what="the child to end")
    assert runtime.is_running() is False
    assert all(s.state == "stopped" for s in runtime.status()) or runtime.status() == []
    runtime.start(None, None, ["a"])
    assert services_state(runtime)["a"]["pid"] not in (None, child)


def test_restart_of_a_crash_looping_service_tries_again_at_once(supervised, programs, wait_until, services_state):
    runtime = supervised({"crash": programs.CRASHER}, policy={"backoff_initial_seconds": 60, "crashloop_after": 1})
    runtime.start(None, None, ["crash"])
    wait_until(lambda: services_state(runtime).get("crash", {}).get("state") == "crashloop", what="crashloop")
    before = services_state(runtime)["crash"]["restarts"]
    runtime.restart(["crash"])  # the 60 s backoff is skipped
    wait_until(lambda: services_state(runtime)["crash"]["restarts"] > before, what="an immediate new attempt")

