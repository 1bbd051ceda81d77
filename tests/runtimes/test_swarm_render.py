"""The swarm stack as rendered (no engine): least privilege, placement, secrets and configs; topology and preflight rules."""
from __future__ import annotations

import pytest
import yaml

from fleetcore.errors import EngineUnavailableError
from sensor_manager.cli import app
from sensor_manager.config import load_config
from sensor_manager.layout import ProjectLayout
from sensor_manager.plan import resolve_plan
from sensor_manager.preflight import check_central_store
from sensor_manager.runtimes import topology
from sensor_manager.runtimes.swarm import SwarmRuntime
from sensor_manager.runtimes.swarm_settings import SwarmSettings

CONFIG = """\
project: swarm-render
sensors_per_city: 2
cities: [Amsterdam, São Paulo]
uploader:
  sinks:
    delta: {enabled: false}
    s3: {enabled: true, bucket: central}
"""
SECRET = "wJalrXUtnFEMI-not-in-any-file"


@pytest.fixture
def stack(project_dir, monkeypatch):
    def render(extra: str = "") -> dict:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        (project_dir / "sensor-manager.yaml").write_text(CONFIG + extra)
        layout = ProjectLayout.at(project_dir)
        config = load_config(None, project_dir, {})
        runtime = SwarmRuntime(layout)
        runtime.render(resolve_plan(config, layout, persist=True), config, image="sensor-manager:0.1.0-test")
        text = runtime.compose_path.read_text()
        assert SECRET not in text and "AKIDEXAMPLE" not in text
        return yaml.safe_load(text)

    return render


def test_sensors_keep_the_compose_least_privilege_that_swarm_supports_and_have_no_route_out(stack):
    document = stack()
    sensors = {name: s for name, s in document["services"].items() if name.startswith("sensor-")}
    assert len(sensors) == 4
    for service in sensors.values():
        assert (service["read_only"], service["init"], service["cap_drop"]) == (True, True, ["ALL"])
        assert service["networks"] == ["isolated"] and "network_mode" not in service
        assert not {"security_opt", "pids_limit", "memswap_limit", "mem_limit", "restart", "tmpfs"} & set(service)
        assert {"type": "tmpfs", "target": "/tmp", "tmpfs": {"size": 16 * 2**20}} in service["volumes"]
        assert all(m["type"] == "tmpfs" or "bind" not in m for m in service["volumes"])
        assert service["deploy"]["restart_policy"] == {"condition": "any", "delay": "5s", "max_attempts": 5}
        assert service["deploy"]["resources"] == {"limits": {"memory": "256m"}}
        assert service["deploy"]["labels"]["io.sensor-manager.project"] == document["networks"]["isolated"]["labels"]["io.sensor-manager.project"]
        assert [c["target"] for c in service["configs"]] == ["/project/state/sensor-manager.yaml", "/project/state/plan.json",
                                                             "/project/state/simulator-settings.json"]
        assert "healthcheck" in service and "secrets" not in service
    assert document["networks"]["isolated"]["internal"] is True


def test_each_city_is_placed_by_its_node_label_and_uploaders_reach_the_store(stack):
    document = stack()
    constraints = {name: s["deploy"]["placement"]["constraints"] for name, s in document["services"].items()}
    assert constraints["uploader-amsterdam"] == ["node.labels.io.sensor-manager.city.Amsterdam==true"]
    assert constraints["uploader-sao-paulo"] == ["node.labels.io.sensor-manager.city.Sao_Paulo==true"]
    uploader = document["services"]["uploader-amsterdam"]
    assert uploader["networks"] == ["hostnet"] and document["networks"]["hostnet"] == {"external": True, "name": "host"}
    assert uploader["secrets"][0]["target"] == "aws_credentials" and uploader["secrets"][0]["mode"] == 0o400
    assert uploader["environment"]["AWS_SHARED_CREDENTIALS_FILE"] == "/run/secrets/aws_credentials"
    secret = document["secrets"]["aws_credentials"]
    assert secret["file"].endswith("state/secrets/aws_credentials") and secret["name"].startswith("sm-")


def test_the_placement_map_pins_a_city_to_a_node_and_a_registry_prefixes_the_image(stack):
    document = stack("swarm:\n  placement: {São Paulo: edge-2}\n  registry: registry.example:5000/fleet\n")
    service = document["services"]["uploader-sao-paulo"]
    assert service["deploy"]["placement"]["constraints"] == ["node.hostname==edge-2"]
    assert service["image"] == "registry.example:5000/fleet/sensor-manager:0.1.0-test"


def test_a_changed_role_config_is_a_new_swarm_config(stack):
    first = stack()["configs"]["uploader-sensor-manager-yaml"]["name"]
    second = stack("simulation: {readings_per_second: 3}\n")["configs"]["uploader-sensor-manager-yaml"]["name"]
    assert first != second  # Swarm configs are immutable: a new content needs a new name


def _node(hostname: str, labels: dict, availability: str = "active") -> topology.Node:
    return topology.Node(hostname, hostname, "worker", "ready", availability, labels)


def test_a_city_without_an_eligible_node_names_the_remedy():
    nodes = [_node("edge-1", {"io.sensor-manager.city.Amsterdam": "true"}),
             _node("edge-2", {"io.sensor-manager.city.Berlin": "true"}, availability="drain")]
    settings = SwarmSettings(placement={"Paris": "edge-9"})
    assert topology.placement(["Amsterdam", "Berlin", "Paris"], nodes, settings) == {"Amsterdam": ["edge-1"], "Berlin": [], "Paris": []}
    problems = topology.placement_problems(["Amsterdam", "Berlin", "Paris"], nodes, settings)
    assert problems == [
        "Berlin: no ready, active node is labelled for it; run `./sensor_manager.py nodes label NODE --city Berlin`"
        " or set swarm.placement.Berlin: NODE",
        "Paris: swarm.placement names node 'edge-9', which is not a ready, active node of this swarm (see `./sensor_manager.py nodes`)",
    ]
    with pytest.raises(Exception, match="NODE 'edge-3' is not a node of this swarm"):
        topology.find_node(nodes, "edge-3")


def test_a_lake_only_fleet_needs_a_central_store_or_a_shared_lake(project_dir):
    (project_dir / "sensor-manager.yaml").write_text("project: p\n")
    config = load_config(None, project_dir, {})
    refused = check_central_store(config)
    assert not refused.ok and "enable a central sink (uploader.sinks.s3)" in refused.detail
    config.swarm.shared_lake = True
    assert check_central_store(config).ok


def test_build_save_into_a_folder_is_refused_before_anything_is_built(runner, project_dir, tmp_path):
    result = runner.invoke(app, ["--project-dir", str(project_dir), "build", "--save", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: --save {tmp_path}: is a directory; name the tarball to write, e.g. {tmp_path / 'sensor-manager.tar'}"


class _EngineOutsideASwarm:
    """Answers the two calls `status` makes on an engine that left its swarm, as the engine does."""

    class api:
        @staticmethod
        def services(filters):
            from docker.errors import APIError

            raise APIError("503 Server Error", response=type("R", (), {"status_code": 503, "reason": "Service Unavailable"})())

    @staticmethod
    def info():
        return {"Swarm": {"LocalNodeState": "inactive"}}


def test_status_of_a_swarm_project_on_an_engine_outside_a_swarm_names_the_remedy(project_dir):
    runtime = SwarmRuntime(ProjectLayout.at(project_dir))
    runtime._client = _EngineOutsideASwarm()
    with pytest.raises(EngineUnavailableError, match=r"not part of a swarm; run `docker swarm init --advertise-addr ADDR`"):
        runtime.is_running()
