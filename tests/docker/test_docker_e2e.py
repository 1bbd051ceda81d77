"""The docker runtime end to end on a real engine: start and wait, rows reach the DBs and the lake, a
kill -9 is survived with `seq` continuing, sensors are locked down, the data dir is not root's, a
foreign container named like ours is never touched, and a secret shows up nowhere.
"""
from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest
import yaml

from sensor_manager.config import load_config
from sensor_manager.layout import ProjectLayout
from sensor_manager.plan import resolve_plan
from sensor_manager.runtimes.compose import ComposeRuntime
from sensor_manager.runtimes.compose_render import PROJECT_LABEL

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SECRET = "U3VwM3JTM2NyZXRDMHNtb3NLZXlGb3JUZXN0cw=="  # base64, as a Cosmos master key is; unique to grep for
CONFIG = {
    "project": "docker-e2e",
    "seed": 11,
    "sensors_per_city": 2,
    "cities": [{"name": "Amsterdam"}],
    "simulation": {"readings_per_second": 4},
    "uploader": {"interval_seconds": 2},
}


def make_project(root: Path, config: dict) -> tuple[ProjectLayout, object]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "sensor-manager.yaml").write_text(yaml.safe_dump(config))
    layout = ProjectLayout.at(root)
    return layout, load_config(None, root)


def lake_rows(layout: ProjectLayout) -> int:
    from deltalake import DeltaTable

    try:
        return DeltaTable(str(layout.lake / "sensor_readings")).to_pyarrow_table().num_rows
    except Exception:
        return 0


def project_containers(client, runtime: ComposeRuntime) -> list:
    return client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={runtime.project_name}"})


def container_of(client, runtime: ComposeRuntime, service: str):
    for container in project_containers(client, runtime):
        if container.labels.get("com.docker.compose.service") == service:
            return container
    raise AssertionError(f"no container for {service}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory, docker_engine, project_image, docker_settings_for_tests):
    """1 city x 2 sensors + its uploader, started and healthy; stopped (and checked gone) at the end."""
    networks_before = {n.name for n in docker_engine.networks.list()}
    layout, config = make_project(tmp_path_factory.mktemp("docker-e2e") / "project", CONFIG)
    runtime = ComposeRuntime(layout, settings=docker_settings_for_tests)
    plan = resolve_plan(config, layout, persist=True)
    runtime.start(plan, config)
    unhealthy = runtime.wait_healthy(None, 180)
    try:
        yield runtime, layout, plan, unhealthy
    finally:
        runtime.stop()
        assert not project_containers(docker_engine, runtime)
        assert {n.name for n in docker_engine.networks.list()} == networks_before  # no bridge, no default network


def test_start_waits_for_healthy_and_rows_reach_dbs_and_lake(stack, docker_engine, wait_until, db_seqs):
    runtime, layout, plan, unhealthy = stack
    assert unhealthy == []
    rows = {s.name: (s.state, s.health) for s in runtime.status()}
    assert rows == {name: ("running", "healthy") for name in rows} and len(rows) == 3
    for sensor in plan.sensors:
        wait_until(lambda db=layout.root / sensor.db_path: len(db_seqs(db)) >= 5, 60, f"rows in {sensor.db_path}")
    wait_until(lambda: lake_rows(layout) > 0, 120, "rows in the lake")


def test_sensors_have_no_network_a_read_only_root_and_no_capabilities(stack, docker_engine):
    runtime, layout, plan, _ = stack
    for sensor in plan.sensors:
        details = container_of(docker_engine, runtime, f"sensor-amsterdam-{sensor.code.lower()}").attrs
        host = details["HostConfig"]
        assert host["NetworkMode"] == "none"
        assert list(details["NetworkSettings"]["Networks"]) == ["none"]
        assert host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
        assert "no-new-privileges:true" in host["SecurityOpt"]
        assert host["Memory"] > 0 and host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 5}
        assert details["Config"]["User"] not in ("", "0", "root", "0:0")
        assert "container_name" not in details["Config"]["Labels"]


def test_files_in_the_data_dir_are_not_owned_by_root(stack, wait_until):
    runtime, layout, plan, _ = stack
    wait_until(lambda: all((layout.root / s.db_path).is_file() for s in plan.sensors), 60, "sensor DBs")
    uid = int(yaml.safe_load(runtime.compose_path.read_text())["services"]["uploader-amsterdam"]["user"].split(":")[0])
    assert uid != 0
    owners = {path: path.stat().st_uid for path in layout.data.rglob("*")}
    assert owners and all(owner == uid for owner in owners.values()), owners


def test_kill_9_of_the_main_process_restarts_it_and_seq_continues(stack, docker_engine, wait_until, db_seqs):
    runtime, layout, plan, _ = stack
    sensor = plan.sensors[0]
    service = f"sensor-amsterdam-{sensor.code.lower()}"
    db = layout.root / sensor.db_path
    container = container_of(docker_engine, runtime, service)
    before = container.attrs["RestartCount"]
    wait_until(lambda: len(db_seqs(db)) >= 3, 60, "rows before the kill")
    seq_before = max(db_seqs(db))

    followed: list[str] = []
    follower = runtime.logs([service], follow=True)
    threading.Thread(target=lambda: [followed.append(line.text) for line in follower], daemon=True).start()
    wait_until(lambda: any("Simulating" in text for text in followed), 30, "the followed log")

    os.kill(container.attrs["State"]["Pid"], signal.SIGKILL)  # `docker kill` would not trigger the restart policy

    def restarted():
        container.reload()
        return container.attrs["RestartCount"] > before and container.attrs["State"]["Running"]

    wait_until(restarted, 60, "the restart")
    wait_until(lambda: max(db_seqs(db)) > seq_before + 2, 60, "new rows after the restart")
    seqs = db_seqs(db)
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))  # seq continued, never reused
    row = next(s for s in runtime.status() if s.name == service)
    assert row.restarts >= 1
    wait_until(lambda: sum("Simulating" in text for text in followed) >= 2, 60, "logs -f following into the restarted container")


def test_a_foreign_container_named_like_ours_survives_cleanup_stop_and_reset(stack, docker_engine):
    runtime, layout, plan, _ = stack
    base = os.environ.get("BASE_IMAGE", "python:3.12-slim")
    foreign = [
        docker_engine.containers.run(base, ["sleep", "600"], name=name, detach=True, network_mode="none")
        for name in ("uploader-amsterdam", f"sensor_Amsterdam_{plan.sensors[0].code.lower()}",
                     f"{runtime.project_name}-sensor-foreign-1")
    ]
    try:
        assert runtime.cleanup(dry_run=False) == []
        from sensor_manager import lifecycle

        config = load_config(None, layout.root)
        lifecycle.stop(layout, runtime_name="docker")
        assert not runtime.is_running()
        lifecycle.reset(layout, config, runtime_name="docker")  # stop, wipe, bump the epoch, start again
        assert runtime.is_running()
        runtime.cleanup(dry_run=False)
        runtime.stop()
        for container in foreign:
            container.reload()
            assert container.status == "running", container.name
    finally:
        for container in foreign:
            container.remove(force=True)


def test_a_secret_appears_nowhere(tmp_path, docker_engine, project_image, docker_settings_for_tests, wait_until):
    config = {**CONFIG, "sensors_per_city": 1, "uploader": {
        "interval_seconds": 2,
        "sinks": {"cosmos": {"enabled": False, "endpoint": "https://127.0.0.1:9/", "key": SECRET}},
    }}
    layout, cfg = make_project(tmp_path / "secret-project", config)
    cfg.uploader.sinks.cosmos.enabled = True  # past preflight (nothing listens on port 9): the secret still travels
    runtime = ComposeRuntime(layout, settings=docker_settings_for_tests)
    plan = resolve_plan(cfg, layout, persist=True)
    try:
        runtime.start(plan, cfg)
        uploader = container_of(docker_engine, runtime, "uploader-amsterdam")
        status_file = layout.status_dir / "uploader-amsterdam.json"

        def has_run():
            uploader.reload()
            return uploader.logs() or status_file.exists() or uploader.attrs["RestartCount"] > 0

        wait_until(has_run, 90, "the uploader to run (output, a status file or a restart)")
        texts = [runtime.compose_path.read_text()]
        texts += [p.read_text() for p in (layout.state / "compose").rglob("*") if p.is_file()]
        for container in project_containers(docker_engine, runtime):
            texts.append(json.dumps(docker_engine.api.inspect_container(container.id)))
            texts.append(container.logs().decode("utf-8", "replace"))
        assert all(SECRET not in text for text in texts)
        secret_file = layout.secrets / "cosmos_key"
        assert secret_file.read_text() == SECRET and secret_file.stat().st_mode & 0o777 == 0o400
        assert secret_file.stat().st_uid == int(uploader.attrs["Config"]["User"].split(":")[0])
        assert "COSMOS_KEY_FILE=/run/secrets/cosmos_key" in uploader.attrs["Config"]["Env"]
    finally:
        runtime.stop()
