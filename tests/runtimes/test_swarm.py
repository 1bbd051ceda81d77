"""The swarm runtime on a real one-node swarm: two labelled cities, 2×2 sensors shipping to a loopback S3 server.

The swarm comes from `swarm_manager` (tests/runtimes/conftest.py), which leaves the shared engine as it found it.
"""
from __future__ import annotations

import json
import uuid

import pytest

from sensor_manager.cli import app
from tests.runtimes.conftest import docker_cli as _docker
from tests.uploader.sinks.conftest import S3_ENV, S3_ENV_CLEARED, S3Server
from tests.uploader.sinks.test_multi_sink import assert_once_each, bucket_keys, edge_counts

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CONFIG = """\
project: swarm-e2e
seed: 1414
sensors_per_city: 2
simulation:
  readings_per_second: 10
  status_interval_seconds: 0.5
cities:
  - name: Amsterdam
  - name: Berlin
uploader:
  interval_seconds: 2
  sinks:
    delta: {{enabled: false}}
    s3: {{enabled: true, bucket: {bucket}}}
docker:
  healthcheck_interval_seconds: 2
  start_period_seconds: 10
  stop_grace_seconds: 5
"""
CITIES = ("Amsterdam", "Berlin")


@pytest.fixture(scope="module")
def s3_module():
    server = S3Server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _s3_environment(s3_module, monkeypatch):
    """What `start` passes on to the uploaders: loopback endpoint, dummy keys (a secret file), nothing beyond."""
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    for name in S3_ENV_CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_module.endpoint)


@pytest.fixture(scope="module")
def project(tmp_path_factory, s3_module, swarm_manager):
    from typer.testing import CliRunner

    root = tmp_path_factory.mktemp("swarm") / "project"
    root.mkdir()
    import boto3

    bucket = f"swarm-{uuid.uuid4().hex[:12]}"  # module setup runs before the per-test environment: keys given here
    boto3.client("s3", endpoint_url=s3_module.endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=bucket)
    (root / "sensor-manager.yaml").write_text(CONFIG.format(bucket=bucket))
    runner = CliRunner()

    def cli(*args: str):
        result = runner.invoke(app, ["--project-dir", str(root), *args])
        assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
        return result

    yield root, bucket, cli
    cli("stop")


def _services(cli) -> dict[str, dict]:
    result = cli("status", "--json")
    assert result.exit_code == 0, result.stderr
    return {s["name"]: s for s in json.loads(result.stdout)["services"]}


def test_a_two_city_fleet_on_a_swarm_ships_every_reading_once_through_task_kills(project, swarm_manager, s3_module, wait_until):
    root, bucket, cli = project
    client, hostname = swarm_manager

    refused = cli("start", "--runtime", "swarm")
    assert refused.exit_code == 2 and "placement: Amsterdam: no ready, active node is labelled for it" in refused.stderr
    assert "nodes label NODE --city Amsterdam" in refused.stderr and not (root / "state" / "swarm").exists()
    labelled = cli("nodes", "label", hostname, "--city", "Amsterdam", "--city", "Berlin")
    assert labelled.exit_code == 0, labelled.stderr
    listing = json.loads(cli("nodes", "--json").stdout)
    assert listing["placement"] == {"Amsterdam": [hostname], "Berlin": [hostname]}

    started = cli("start", "--runtime", "swarm", "--wait", "--wait-timeout", "150", "--no-diagnostics")
    assert started.exit_code == 0, started.stderr
    services = _services(cli)
    assert len(services) == 6 and all((s["state"], s["health"]) == ("running", "healthy") for s in services.values()), services
    stack = client.services.list(filters={"label": "com.docker.stack.namespace"})
    assert all(s.attrs["Spec"]["TaskTemplate"]["Placement"]["Constraints"] for s in stack if s.name.startswith("sm-"))
    assert "aws_secret_access_key" not in (root / "state" / "swarm" / "stack.yml").read_text()

    wait_until(lambda: len(bucket_keys(s3_module, bucket, "delta")) > 40, timeout=90, what="rows in the S3 Delta table")
    sensor = next(s for name, s in services.items() if name.startswith("sensor-amsterdam"))
    uploader = services["uploader-berlin"]
    for victim in (sensor, uploader):
        client.containers.get(_container_of(client, victim["name"])).kill()

    def rescheduled():
        now = _services(cli)
        return all(now[v["name"]]["restarts"] > v["restarts"] and now[v["name"]]["health"] == "healthy" for v in (sensor, uploader))

    wait_until(rescheduled, timeout=90, what="Swarm to replace the killed tasks")
    logs = cli("logs", "--tail", "3", "uploader-berlin")
    assert logs.exit_code == 0 and logs.stdout.startswith("uploader-berlin"), logs.stdout
    monitor = cli("monitor", "--once", "--json")
    assert monitor.exit_code == 0, monitor.stderr
    edge = cli("query", "--source", "edge", "--count", "--format", "json")  # runs inside the uploader containers
    assert edge.exit_code == 0 and json.loads(edge.stdout)["rows"][0]["count"] > 0, edge.stdout + edge.stderr

    _targeted_start(cli)

    stopped = cli("stop")
    assert stopped.exit_code == 0, stopped.stderr
    assert not client.services.list(filters={"label": f"io.sensor-manager.project={_stack(root)}"})
    drained = cli("upload", "--sqlite", str(root / "data"), "--once")
    assert drained.exit_code == 0, drained.stderr
    counts = edge_counts(root)
    assert len(counts) == 4
    assert_once_each(bucket_keys(s3_module, bucket, "delta"), counts, "s3")


def _targeted_start(cli) -> None:
    """`start CITY` scales up only what is stopped: the city's running sensors keep their tasks.

    (`logs -f` across a restart is in the swarm run of tests/runtimes/test_fleet.py.)"""
    berlin_sensors = {n: s["pid"] for n, s in _services(cli).items() if n.startswith("sensor-berlin")}
    assert cli("stop", "uploader-berlin").exit_code == 0
    assert _services(cli)["uploader-berlin"]["state"] == "stopped"
    assert cli("start", "Berlin").exit_code == 0
    assert _services(cli)["uploader-berlin"]["state"] == "running"
    assert {n: s["pid"] for n, s in _services(cli).items() if n.startswith("sensor-berlin")} == berlin_sensors


def test_cleanup_removes_this_projects_leftovers_and_no_foreign_service_or_stack(project, swarm_manager, tmp_path):
    root, _, cli = project
    client, _ = swarm_manager
    suffix = uuid.uuid4().hex[:8]
    foreign_stack = f"foreign{suffix}"
    stack_file = tmp_path / "foreign.yml"
    stack_file.write_text('version: "3.8"\nservices:\n  idle:\n    image: local/python-base:bookworm\n'
                          '    command: ["sleep", "600"]\n    networks: [hostnet]\n'
                          'networks:\n  hostnet: {external: true, name: host}\n')
    _docker("stack", "deploy", "--detach=true", "--resolve-image", "never", "-c", str(stack_file), foreign_stack)
    foreign_service = f"foreign-{suffix}"
    _docker("service", "create", "--detach", "--name", foreign_service, "--network", "host",
            "--label", f"io.sensor-manager.project=someone-else-{suffix}", "local/python-base:bookworm", "sleep", "600")
    leftover = client.configs.create(name=f"{_stack(root)}-leftover-{suffix}", data=b"x",
                                     labels={"io.sensor-manager.project": _stack(root)})
    try:
        assert cli("stop").exit_code == 0
        dry = cli("cleanup", "--dry-run")
        assert dry.exit_code == 0 and f"config {leftover.name}" in dry.stdout, dry.stdout
        result = cli("cleanup")
        assert result.exit_code == 0 and f"Removed config {leftover.name}" in result.stdout, result.stdout
        assert not client.configs.list(filters={"name": leftover.name})
        assert client.services.list(filters={"name": foreign_service})
        assert client.services.list(filters={"name": f"{foreign_stack}_idle"})
        assert cli("cleanup").stderr.strip() == "No leftovers."
    finally:
        _docker("service", "rm", foreign_service, check=False)
        _docker("stack", "rm", foreign_stack, check=False)


def test_a_fleet_whose_only_sink_is_the_node_local_lake_is_refused(swarm_manager, tmp_path, runner):
    (tmp_path / "sensor-manager.yaml").write_text("project: lake-only\ncities: [Amsterdam]\nsensors_per_city: 1\n")
    result = runner.invoke(app, ["--project-dir", str(tmp_path), "start", "--runtime", "swarm"])
    assert result.exit_code == 2
    assert "preflight: central store: the enabled sinks (delta) write each node's own lake/" in result.stderr
    assert "swarm.shared_lake: true" in result.stderr and not (tmp_path / "state").exists()


def _stack(root) -> str:
    from sensor_manager.layout import ProjectLayout
    from sensor_manager.runtimes.swarm import SwarmRuntime

    return SwarmRuntime(ProjectLayout.at(root)).project_name


def _container_of(client, service: str) -> str:
    found = [c for c in client.containers.list() if c.labels.get("com.docker.swarm.service.name", "").endswith(f"_{service}")]
    assert found, f"no running container of {service}"
    return found[0].id
