"""Container edge reads (Docker Desktop): monitor from status files only, diagnostics skips DB checks,
`query --source edge` runs in the uploader containers (here a fake container that runs the CLI in-process
over a copy of just its city's data, as the real one mounts it)."""
from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from fleetcore.naming import city_service_slug
from fleetcore.statusfiles import write_status
from sensor_manager.cli import app
from sensor_manager.layout import ProjectLayout
from sensor_manager.observe import access, edge
from sensor_manager.runtimes import record_runtime


@pytest.fixture
def container_reads(monkeypatch):
    monkeypatch.setenv(access.ENV_VAR, "container")


def write_container_status(fleet, sensor, seq: int, rate: float, anomaly: str | None = None, generation: str | None = None):
    """The status file a sensor container writes next to its DB (data/<City>/<CODE>/status.json)."""
    entry = {"db_path": f"/project/{sensor.db_path}", "rows_written": seq, "seq": seq, "last_timestamp": f"2025-06-01T13:00:{seq:02d}.000+00:00",
             "readings_per_second": rate, "errors": 0, "last_error": None, "skipped_readings": 0, "active_anomaly": anomaly,
             "generation": generation}
    path = fleet.db(sensor.sensor_id).parent / "status.json"
    write_status(path, {"role": "sensor", "name": f"sensor-{city_service_slug(sensor.safe_city)}-{sensor.code.lower()}", "state": "running",
                        "fatal_error": None, "sensors": {sensor.sensor_id: entry}}, 2.0)


def test_edge_access_modes(monkeypatch, tmp_path):
    layout = ProjectLayout.at(tmp_path)
    assert access.edge_access(layout).host  # nothing recorded
    monkeypatch.setenv(access.ENV_VAR, "container")
    assert access.edge_access(layout).mode == "container"
    monkeypatch.setenv(access.ENV_VAR, "auto")
    record_runtime(layout, "docker", "test")
    monkeypatch.setattr(access, "_engine_is_docker_desktop", lambda: True)
    assert not access.edge_access(layout).host
    monkeypatch.setattr(access, "_engine_is_docker_desktop", lambda: False)
    assert access.edge_access(layout).host
    record_runtime(layout, "local", "test")
    monkeypatch.setattr(access, "_engine_is_docker_desktop", lambda: True)
    assert access.edge_access(layout).host
    monkeypatch.setenv(access.ENV_VAR, "host")
    record_runtime(layout, "docker", "test")
    assert access.edge_access(layout).host


def test_a_bad_mode_is_a_usage_error(runner, fleet, monkeypatch):
    monkeypatch.setenv(access.ENV_VAR, "sideways")
    result = runner.invoke(app, ["monitor", "--once", "--json", "--project-dir", str(fleet.root)])
    assert result.exit_code == 2 and "SENSOR_MANAGER_EDGE_READS" in result.stderr


def test_monitor_takes_every_number_from_status_files_and_opens_no_db(runner, fleet, container_reads, monkeypatch):
    fleet.upload("Amsterdam", upto={"Amsterdam_AM00": 15})  # uploader status: AM00 at 15, AM01 at 20
    seqs = {"Amsterdam_AM00": 25, "Amsterdam_AM01": 30, "Sao_Paulo_SA00": 24}
    for sensor in fleet.plan.sensors:
        write_container_status(fleet, sensor, seqs[sensor.sensor_id], rate=2.5, anomaly="spike" if sensor.sensor_id == "Amsterdam_AM01" else None)
        fleet.db(sensor.sensor_id).unlink()  # the host cannot read the DBs at all
    def refuse(*_args, **_kwargs):
        raise AssertionError("an edge DB was opened from the host")
    monkeypatch.setattr(edge, "_connect", refuse)
    monkeypatch.setattr(edge, "read_edge_state", refuse)

    result = runner.invoke(app, ["monitor", "--once", "--json", "--project-dir", str(fleet.root)])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    sensors = {s["sensor_id"]: s for s in document["sensors"]}
    assert {k: s["rows"] for k, s in sensors.items()} == seqs
    assert sensors["Amsterdam_AM00"]["last_timestamp"] == "2025-06-01T13:00:25.000+00:00"
    assert all(s["state"] == "running" and s["readings_per_second"] == 2.5 for s in sensors.values())
    cities = {c["city"]: c for c in document["cities"]}
    assert cities["Amsterdam"]["rows"] == 55 and cities["Amsterdam"]["anomalies"] == 1
    assert cities["Amsterdam"]["lag_rows"] == (25 - 15) + (30 - 20)  # status seq minus the uploader's position
    assert cities["Sao_Paulo"]["lag_rows"] == 24  # no uploader status and nothing in the lake: all pending
    assert cities["Amsterdam"]["uploader_state"] == "idle"

    # A stopped project: the last written status still gives rows and seq; rates drop to 0.
    for path in fleet.layout.data.glob("*/*/status.json"):
        stale = json.loads(path.read_text()) | {"updated_at_epoch": 0}
        path.write_text(json.dumps(stale))
    document = json.loads(runner.invoke(app, ["monitor", "--once", "--json", "--project-dir", str(fleet.root)]).stdout)
    assert {s["sensor_id"]: (s["rows"], s["state"], s["readings_per_second"]) for s in document["sensors"]} == {
        k: (v, "stopped", 0) for k, v in seqs.items()}


def test_host_mode_still_reads_the_dbs(runner, fleet):
    for sensor in fleet.plan.sensors:
        write_container_status(fleet, sensor, 99, rate=1.0)
    document = json.loads(runner.invoke(app, ["monitor", "--once", "--json", "--project-dir", str(fleet.root)]).stdout)
    assert {s["rows"] for s in document["sensors"]} == {20}


def test_diagnostics_skips_db_checks_and_says_which_mode(runner, fleet, container_reads, tmp_path):
    fleet.upload("Amsterdam")
    result = runner.invoke(app, ["diagnostics", "--json", "--project-dir", str(fleet.root), "--bundle", str(tmp_path / "b.tar.gz")])
    assert result.exit_code == 0, result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["edge reads"]["status"] == "pass" and checks["edge reads"]["detail"].startswith("container:")
    for sensor in fleet.plan.sensors:
        check = checks[f"db {sensor.sensor_id}"]
        assert check["status"] == "skip"
        assert f"exec uploader-{city_service_slug(sensor.safe_city)} python -m sensor_manager --project-dir /project diagnostics" in check["hint"]
    import tarfile
    with tarfile.open(tmp_path / "b.tar.gz") as bundle:
        member = next(m for m in bundle.getmembers() if m.name.endswith("databases.json"))
        assert json.loads(bundle.extractfile(member).read()) == []
    host = json.loads(runner.invoke(app, ["diagnostics", "--json", "--project-dir", str(fleet.root)], env={access.ENV_VAR: "host"}).stdout)
    assert {c["name"]: c for c in host["checks"]}["edge reads"]["detail"].startswith("host:")


# --- query through (fake) uploader containers -------------------------------------------------------


class FakeContainer:
    """Runs `python -m sensor_manager ...` in-process over a project dir holding only its city's data."""

    def __init__(self, city_data: Path, root: Path, safe_city: str, calls: list):
        self.city_data = city_data
        self.name = f"fake-uploader-{city_service_slug(safe_city)}"
        self.labels = {}
        self.root = root
        self.calls = calls

    lock = threading.Lock()  # CliRunner swaps sys.stdout: one in-process "container" at a time

    def exec_run(self, argv, demux=False):
        from typer.testing import CliRunner

        assert isinstance(argv, list) and argv[:4] == ["python", "-m", "sensor_manager", "query"] and demux
        self.calls.append(argv)
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.copytree(self.city_data, self.root / "data" / self.city_data.name)  # the city's data as it is now
        args = [str(self.root) if a == "/project" else a for a in argv[3:]]
        with self.lock:
            result = CliRunner().invoke(app, args, env={access.ENV_VAR: "host"})
        return result.exit_code, (result.stdout.encode(), result.stderr.encode())


class FakeClient:
    def __init__(self, fleet, tmp_path: Path):
        self.calls: list = []
        self.by_city = {}
        for slug in fleet.plan.by_city():
            self.by_city[slug] = FakeContainer(fleet.layout.data / slug, tmp_path / f"container-{slug}", slug, self.calls)
        self.containers = self

    def list(self, filters):
        city = next(label.split("=", 1)[1] for label in filters["label"] if label.startswith("io.sensor-manager.city="))
        assert filters["status"] == "running"
        return [self.by_city[city]]


@pytest.fixture
def fake_uploaders(fleet, tmp_path, monkeypatch):
    client = FakeClient(fleet, tmp_path)
    monkeypatch.setattr("sensor_manager.runtimes.engine.docker_client", lambda *a, **k: client)
    return client


def query_json(runner, fleet, *args, mode="host"):
    result = runner.invoke(app, ["query", "--project-dir", str(fleet.root), "--json", *args], env={access.ENV_VAR: mode})
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("args", [
    (), ("--limit", "7"), ("--count",), ("--latest",), ("--list",), ("--all",), ("--city", "São Paulo", "--limit", "3"),
    ("--sensor", "Amsterdam_AM01", "--since", "2025-06-01T11:59:50"), ("--sensor", "x' OR 1=1 --"),
])
def test_query_in_containers_matches_the_host(runner, fleet, fake_uploaders, args):
    fleet.write_rows(fleet.plan.sensor("Sao_Paulo_SA00"), 5)
    assert query_json(runner, fleet, *args, mode="container") == query_json(runner, fleet, *args)
    cities = {"--sensor": 1, "--city": 1}
    expected = 0 if "x' OR 1=1 --" in args else next((n for flag, n in cities.items() if flag in args), 2)
    assert len(fake_uploaders.calls) == expected
    if "x' OR 1=1 --" in args:
        return
    for argv in fake_uploaders.calls:
        assert argv[-2:] == ["--format", "json"] and "--city" not in argv


def test_filters_reach_the_container_as_their_own_argv_elements(runner, fleet, fake_uploaders):
    rows = query_json(runner, fleet, "--sensor", "Amsterdam_AM01", "--since", "2025-06-01T11:59:55Z", mode="container")["rows"]
    assert [r["seq"] for r in rows] == [15, 16, 17, 18, 19, 20]
    (argv,) = fake_uploaders.calls
    assert argv[argv.index("--sensor-id") + 1] == "Amsterdam_AM01"
    assert argv[argv.index("--since") + 1] == "2025-06-01T11:59:55+00:00"  # resolved once, on the host


def test_a_stopped_uploader_container_is_a_clear_error(runner, fleet, fake_uploaders):
    fake_uploaders.by_city.pop("Amsterdam")
    fake_uploaders.list = lambda filters: []
    result = runner.invoke(app, ["query", "--project-dir", str(fleet.root), "--city", "Amsterdam"], env={access.ENV_VAR: "container"})
    assert result.exit_code == 1 and "uploader-amsterdam is not running" in result.stderr and "--source lake" in result.stderr


def test_a_usage_error_inside_the_container_arrives_as_its_plain_error_line(runner, fleet, fake_uploaders, monkeypatch):
    # An older image that does not know a flag the host sends: its CLI answers `error: …` plus a hint, exit 2.
    container = fake_uploaders.by_city["Amsterdam"]
    real_exec = container.exec_run
    monkeypatch.setattr(container, "exec_run", lambda argv, demux=False: real_exec([*argv, "--flag-from-the-future"], demux))
    result = runner.invoke(app, ["query", "--project-dir", str(fleet.root), "--city", "Amsterdam"], env={access.ENV_VAR: "container"})
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: query inside uploader-amsterdam (") and line.endswith("): no such option: --flag-from-the-future")
