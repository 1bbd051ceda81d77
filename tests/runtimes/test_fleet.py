"""End to end: a real fleet (2 cities × 2 sensors, 20 readings/s, uploads every second) driven through the CLI.

One fleet per runtime is shared by the tests of this module, which run in order (a story: start,
observe, crash, stop, start again, reset, clean up). The scenarios never name a runtime's services
directly; they take them from `status --json`, so the Docker runtime runs the same story (param
"docker", marked `docker`: it needs a real engine with Compose v2), and so does the swarm runtime on a
one-node swarm (param "swarm", also `docker`; its one node's lake is the shared lake).
"""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest
from deltalake import DeltaTable

from sensor_manager.cli import app
from sensor_manager.layout import ProjectLayout
from sensor_manager.runtimes.processes import PROJECT_ENV, project_processes
from sensor_manager.simulator.db import open_readonly

pytestmark = pytest.mark.slow

CONFIG = """\
project: lifecycle-e2e
seed: 4242
sensors_per_city: 2
runtime: {runtime}
simulation:
  readings_per_second: 20
  status_interval_seconds: 0.5
cities:
  - name: Amsterdam
  - name: Berlin
uploader:
  interval_seconds: 1
swarm:
  shared_lake: true
"""
FOREIGN = ("data/README-mine.txt", "data/Amsterdam/notes.txt")


class Fleet:
    def __init__(self, root: Path, runtime: str, runner, wait_until):
        self.root = root
        self.runtime = runtime
        self.layout = ProjectLayout.at(root)
        self.runner = runner
        self.wait_until = wait_until
        self.memory: dict = {}

    def cli(self, *args: str, input: str | None = None):
        result = self.runner.invoke(app, ["--project-dir", str(self.root), *args], input=input)
        assert "Traceback" not in (result.stdout + result.stderr), result.stdout + result.stderr
        return result

    def status(self) -> dict:
        result = self.cli("status", "--json")
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)

    def services(self, role: str | None = None, city: str | None = None) -> list[dict]:
        return [s for s in self.status()["services"] if (role is None or s["role"] == role) and (city is None or s["city"] == city)]

    def plan(self) -> dict:
        return json.loads(self.layout.plan_file.read_text())

    def db_seqs(self) -> dict[str, list[int]]:
        seqs = {}
        for sensor in self.plan()["sensors"]:
            path = self.root / sensor["db_path"]
            if not path.exists():
                seqs[sensor["sensor_id"]] = []
                continue
            conn = open_readonly(path)
            try:
                seqs[sensor["sensor_id"]] = [r[0] for r in conn.execute("SELECT seq FROM readings ORDER BY seq")]
            finally:
                conn.close()
        return seqs

    def lake_keys(self) -> list[tuple[str, int, int]]:
        table = self.layout.lake / "sensor_readings"
        if not (table / "_delta_log").is_dir():
            return []
        data = DeltaTable(str(table)).to_pyarrow_table(columns=["sensor_id", "fleet_epoch", "seq"]).to_pydict()
        return list(zip(data["sensor_id"], data["fleet_epoch"], data["seq"], strict=True))

    def explain(self) -> str:
        """What the uploaders and the lake say, for a failure message."""
        lake: dict[str, int] = {}
        for sensor_id, _, seq in self.lake_keys():
            lake[sensor_id] = max(seq, lake.get(sensor_id, 0))
        edge = {sid: (seqs[-1] if seqs else 0) for sid, seqs in self.db_seqs().items()}
        statuses = {p.name: json.loads(p.read_text()) for p in sorted(self.layout.status_dir.glob("uploader-*.json"))}
        brief = {n: (d.get("pid"), d.get("state"), d.get("sinks"), [(s.get("end_id"), s.get("positions"), s.get("error")) for s in d.get("sources", [])])
                 for n, d in statuses.items()}
        return f"lake max seq {lake}; edge max seq {edge}; uploaders {brief}; services {self.services()}"

    def project_processes(self) -> list[psutil.Process]:
        return project_processes(str(self.layout.root))


def _runtime_available(name: str) -> None:
    if name in ("docker", "swarm"):
        from sensor_manager.runtimes.engine import engine_available

        ok, why = engine_available()
        if not ok:
            pytest.skip(f"docker runtime unavailable: {why}")


@pytest.fixture(scope="module", params=["local", pytest.param("docker", marks=pytest.mark.docker),
                                        pytest.param("swarm", marks=pytest.mark.docker)])
def fleet(request, tmp_path_factory, wait_until):
    from typer.testing import CliRunner

    _runtime_available(request.param)
    if request.param == "swarm":
        _, hostname = request.getfixturevalue("swarm_manager")
        labelled = CliRunner().invoke(app, ["nodes", "label", hostname, "--city", "Amsterdam", "--city", "Berlin"])
        assert labelled.exit_code == 0, labelled.output
    root = tmp_path_factory.mktemp(f"fleet-{request.param}") / "project"
    root.mkdir()
    (root / "sensor-manager.yaml").write_text(CONFIG.format(runtime=request.param))
    for relative in FOREIGN:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text("not the fleet's\n")
    fleet = Fleet(root, request.param, CliRunner(), wait_until)
    yield fleet
    fleet.cli("stop")
    leftovers = fleet.project_processes()
    for process in leftovers:
        process.kill()
    assert not leftovers, f"processes left behind: {leftovers}"


def _follow_output(process: subprocess.Popen) -> "queue.Queue[str]":
    lines: "queue.Queue[str]" = queue.Queue()

    def pump() -> None:
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def test_start_wait_brings_every_service_to_healthy(fleet):
    result = fleet.cli("start", "--wait", "--wait-timeout", "120")
    assert result.exit_code == 0, result.stderr
    assert f"Runtime: {fleet.runtime}" in result.stderr
    assert f"data:    {fleet.layout.data}" in result.stdout  # the summary after --wait
    recorded = json.loads(fleet.layout.runtime_file.read_text())
    assert recorded["runtime"] == fleet.runtime and recorded["schema_version"] == 1 and recorded["started_at"]

    document = fleet.status()
    assert set(document) == {"schema_version", "project", "runtime", "fault", "config_reload", "services"}
    assert document["fault"] is None and document["config_reload"] is None
    assert (document["project"], document["runtime"]) == ("lifecycle-e2e", fleet.runtime)
    services = document["services"]
    planned = sorted(s["sensor_id"] for s in fleet.plan()["sensors"])
    assert sorted(i for s in services if s["role"] == "sensor" for i in s["sensors"]) == planned
    assert sorted(s["city"] for s in services if s["role"] == "uploader") == ["Amsterdam", "Berlin"]
    for service in services:
        assert set(service) == {"name", "role", "city", "sensors", "state", "health", "restarts", "pid", "started_at"}
        assert (service["state"], service["health"]) == ("running", "healthy"), service
    fleet.memory["ids"] = planned


def test_readings_arrive_in_every_db_and_rows_in_the_lake(fleet):
    fleet.wait_until(lambda: all(fleet.db_seqs().values()), what="readings in every DB")
    fleet.wait_until(lambda: {k[0] for k in fleet.lake_keys()} == set(fleet.memory["ids"]), timeout=60, what="lake rows of every sensor")


def test_a_second_start_reports_the_running_fleet_instead_of_duplicating_it(fleet):
    pids = {s["name"]: s["pid"] for s in fleet.services()}
    recorded = fleet.layout.runtime_file.read_text()
    result = fleet.cli("start")
    assert result.exit_code == 0
    assert "Already running" in result.stderr
    assert {s["name"]: s["pid"] for s in fleet.services()} == pids
    assert fleet.layout.runtime_file.read_text() == recorded  # started_at is the fleet's, not this command's


def test_logs_follow_a_service_through_a_restart(fleet):
    uploader = fleet.services("uploader", "Amsterdam")[0]
    command = [sys.executable, "-m", "sensor_manager", "--project-dir", str(fleet.root), "logs", "-f", "--tail", "1", uploader["name"]]
    follower = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = _follow_output(follower)
        fleet.wait_until(lambda: lines.qsize() > 0, what="the last line (--tail 1): the follower is reading")
        assert fleet.cli("restart", uploader["name"]).exit_code == 0
        new_pid = fleet.services("uploader", "Amsterdam")[0]["pid"]
        assert new_pid != uploader["pid"]
        seen: list[str] = []

        def saw_new_process() -> bool:
            while not lines.empty():
                seen.append(lines.get())
            # local: the supervisor notes each start in the service's log, with the new pid
            return any(str(new_pid) in line for line in seen) if fleet.runtime == "local" else len(seen) > 1

        fleet.wait_until(saw_new_process, what="output of the restarted uploader")
        assert all(line.startswith(uploader["name"]) for line in seen)
        assert follower.poll() is None  # still following
    finally:
        follower.terminate()
        follower.wait(timeout=30)

    result = fleet.cli("logs", "--tail", "2", "-t", uploader["name"])
    assert result.exit_code == 0
    shown = result.stdout.splitlines()
    assert len(shown) == 2 and all(line.split(" | ", 1)[1][:2] == "20" for line in shown)  # -t: a timestamp first


def test_a_killed_simulator_is_restarted_and_seq_continues_without_duplicates(fleet):
    service = fleet.services("sensor", "Amsterdam")[0]
    sensor_id = service["sensors"][0]
    before = fleet.db_seqs()[sensor_id][-1]
    os.kill(service["pid"], signal.SIGKILL)

    def restarted():
        now = fleet.services("sensor", "Amsterdam")[0]
        return now["pid"] not in (None, service["pid"]) and now["restarts"] > service["restarts"] and now

    restarted_service = fleet.wait_until(restarted, what="the simulator to be restarted")
    assert restarted_service["state"] in ("running", "restarting")
    fleet.wait_until(lambda: fleet.db_seqs()[sensor_id][-1] > before + 20, what="new readings after the restart")
    seqs = fleet.db_seqs()[sensor_id]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # strictly increasing, no gap, no reuse
    high = seqs[-1]
    try:
        fleet.wait_until(lambda: max((k[2] for k in fleet.lake_keys() if k[0] == sensor_id), default=0) >= high, timeout=120,
                         what="the lake to catch up past the crash")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {fleet.explain()}") from None
    keys = fleet.lake_keys()
    assert len(keys) == len(set(keys)), "duplicate (sensor_id, fleet_epoch, seq) rows in the lake"


def test_stopping_one_uploader_leaves_the_rest_running(fleet):
    uploader = fleet.services("uploader", "Berlin")[0]
    result = fleet.cli("stop", uploader["name"])
    assert result.exit_code == 0, result.stderr
    by_name = {s["name"]: s for s in fleet.services()}
    assert by_name[uploader["name"]]["state"] == "stopped" and by_name[uploader["name"]]["pid"] is None
    assert all(s["state"] == "running" for n, s in by_name.items() if n != uploader["name"])
    assert fleet.cli("start", "Berlin").exit_code == 0  # a city name targets its services
    assert fleet.services("uploader", "Berlin")[0]["state"] == "running"


def test_stop_ends_everything_and_keeps_data(fleet):
    fleet.memory["seqs"] = {sid: seqs[-1] for sid, seqs in fleet.db_seqs().items()}
    result = fleet.cli("stop")
    assert result.exit_code == 0 and "Stopped the fleet." in result.stderr
    assert fleet.project_processes() == []
    document = fleet.status()
    assert all((s["state"], s["pid"]) == ("stopped", None) for s in document["services"])
    final = fleet.db_seqs()
    assert all(final[sid] and final[sid][-1] >= seq for sid, seq in fleet.memory["seqs"].items())
    fleet.memory["seqs"] = {sid: seqs[-1] for sid, seqs in final.items()}
    again = fleet.cli("stop")
    assert again.exit_code == 0 and "Already stopped" in again.stderr


def test_reset_without_yes_and_without_a_terminal_changes_nothing(fleet, tree_listing):
    before = tree_listing(fleet.root)
    result = fleet.cli("reset")
    assert result.exit_code == 2
    assert "--yes" in result.stderr
    assert tree_listing(fleet.root) == before
    dry = fleet.cli("reset", "--dry-run")
    assert dry.exit_code == 0 and "sensor_data.db" in dry.stdout
    assert tree_listing(fleet.root) == before


def test_start_again_keeps_ids_and_continues_seq(fleet):
    result = fleet.cli("start", "--wait", "--no-diagnostics")
    assert result.exit_code == 0, result.stderr
    assert "data:" not in result.stdout
    assert sorted(s["sensor_id"] for s in fleet.plan()["sensors"]) == fleet.memory["ids"]
    fleet.wait_until(lambda: all(s[-1] > fleet.memory["seqs"][sid] for sid, s in fleet.db_seqs().items()), what="seq to continue")
    for seqs in fleet.db_seqs().values():
        assert seqs == list(range(1, len(seqs) + 1))


def test_reset_starts_a_new_epoch_with_fresh_data(fleet):
    epoch = fleet.plan()["fleet_epoch"]
    result = fleet.cli("reset", "--yes", "--wait")
    assert result.exit_code == 0, result.stderr
    assert fleet.plan()["fleet_epoch"] == epoch + 1
    assert sorted(s["sensor_id"] for s in fleet.plan()["sensors"]) == fleet.memory["ids"]
    assert all(s["health"] == "healthy" for s in fleet.services())
    fleet.wait_until(lambda: fleet.lake_keys() and {k[1] for k in fleet.lake_keys()} == {epoch + 1}, timeout=60, what="new-epoch lake rows")
    assert all(seqs[0] == 1 for seqs in fleet.db_seqs().values())


def test_clean_deletes_the_projects_lake_rows_without_reshipping_history(fleet):
    dry = fleet.cli("clean", "--dry-run")
    assert dry.exit_code == 0
    counted = int(dry.stdout.split("Would delete ")[1].split(" rows")[0])
    assert counted > 0
    marks = {sid: seqs[-1] for sid, seqs in fleet.db_seqs().items()}
    result = fleet.cli("clean", "--yes")
    assert result.exit_code == 0, result.stderr
    assert "sources marked shipped" in result.stderr
    assert all(s["state"] == "running" for s in fleet.services("uploader"))  # paused, then started again
    fleet.wait_until(lambda: {k[0] for k in fleet.lake_keys()} == set(marks), timeout=60, what="new rows after clean")
    shipped_again = [k for k in fleet.lake_keys() if k[2] <= marks[k[0]] - 1]
    assert shipped_again == [], "history before the clean was shipped again"


def test_cleanup_removes_only_this_projects_leftovers(fleet):
    assert fleet.cli("stop").exit_code == 0
    if fleet.runtime != "local":
        result = fleet.cli("cleanup")
        assert result.exit_code == 0 and fleet.cli("cleanup").stderr.strip() == "No leftovers."
        return
    stale = fleet.layout.status_dir / "sensor-atlantis.json"
    stale.write_text(json.dumps({"pid": 999999999, "updated_at_epoch": 0, "interval_seconds": 1}))
    # A planned service's file stays however old: it is that service's last known state, not a leftover.
    planned = sorted(p for p in fleet.layout.status_dir.glob("*.json") if p != stale)[0]
    aged = {**json.loads(planned.read_text()), "pid": 999999999, "updated_at_epoch": 0}
    planned.write_text(json.dumps(aged))
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
    orphan = subprocess.Popen(sleeper, env={**os.environ, PROJECT_ENV: str(fleet.layout.root)})
    try:
        result = fleet.cli("cleanup")
        assert result.exit_code == 0, result.stderr
        assert str(stale) in result.stdout and f"pid {orphan.pid}" in result.stdout
        assert not stale.exists() and json.loads(planned.read_text()) == aged
        assert orphan.wait(timeout=30) is not None
        again = fleet.cli("cleanup")
        assert again.exit_code == 0 and "No leftovers." in again.stderr
    finally:
        orphan.kill()
        orphan.wait()


def test_foreign_files_survive_every_command(fleet):
    for relative in FOREIGN:
        assert (fleet.root / relative).read_text() == "not the fleet's\n"
