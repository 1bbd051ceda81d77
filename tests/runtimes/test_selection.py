"""Runtime selection and targets: the recorded runtime wins, conflicts exit 2, targets resolve to services."""
from __future__ import annotations

import json

import pytest

from fleetcore.errors import RuntimeConflictError, UsageError
from sensor_manager.config import load_config
from sensor_manager.layout import ProjectLayout
from sensor_manager.observe.logs import parse_since
from sensor_manager.plan import build_plan
from sensor_manager.runtimes import choose_runtime, record_runtime, recorded_runtime
from sensor_manager.runtimes.base import plan_services
from sensor_manager.runtimes.targets import resolve_targets


@pytest.fixture
def config(project_dir):
    path = project_dir / "sensor-manager.yaml"
    path.write_text("project: pick\nsensors_per_city: 2\nruntime: local\ncities:\n  - name: São Paulo\n  - name: Berlin\n")
    return load_config(path, project_dir)


def test_record_and_read_back(project_dir):
    layout = ProjectLayout.at(project_dir)
    assert recorded_runtime(layout) is None
    record_runtime(layout, "local", "because")
    document = json.loads(layout.runtime_file.read_text())
    assert set(document) == {"schema_version", "runtime", "started_at", "reason"}
    assert recorded_runtime(layout) == "local"


def test_config_runtime_is_used_until_one_is_recorded(project_dir, config):
    layout = ProjectLayout.at(project_dir)
    choice = choose_runtime(layout, config, None)
    assert (choice.name, choice.recorded) == ("local", False)
    record_runtime(layout, "local")
    assert choose_runtime(layout, config, "auto").recorded is True


def test_an_explicit_conflicting_runtime_is_refused(project_dir, config):
    layout = ProjectLayout.at(project_dir)
    record_runtime(layout, "local")
    with pytest.raises(RuntimeConflictError, match="runs on the local runtime"):
        choose_runtime(layout, config, "docker")
    with pytest.raises(UsageError, match="choose one of auto, docker, local"):
        choose_runtime(layout, config, "kubernetes")


def test_start_may_switch_runtime_once_the_recorded_one_is_stopped(project_dir, config):
    layout = ProjectLayout.at(project_dir)
    record_runtime(layout, "local")
    choice = choose_runtime(layout, config, "docker", starting=True)
    assert choice.name == "docker" and "replaces the stopped local runtime" in choice.reason


def test_targets_resolve_services_cities_and_sensor_ids(config):
    services = plan_services(build_plan(config), None)
    sensor = services[0].sensor_ids[1]
    assert resolve_targets(services, None) is None
    assert resolve_targets(services, ["uploader-berlin"]) == ["uploader-berlin"]
    assert resolve_targets(services, ["são paulo"]) == ["sensor-sao-paulo", "uploader-sao-paulo"]
    assert resolve_targets(services, ["sao-paulo"]) == ["sensor-sao-paulo", "uploader-sao-paulo"]
    assert resolve_targets(services, [sensor.lower()]) == ["sensor-sao-paulo"]
    with pytest.raises(UsageError, match="Did you mean 'sensor-berlin'"):
        resolve_targets(services, ["sensor-berln"])


def test_since_accepts_durations_and_times():
    from datetime import datetime, timezone

    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_since("90s", now) == "2025-01-01T11:58:30.000000Z"
    assert parse_since("1h30m", now) == "2025-01-01T10:30:00.000000Z"
    assert parse_since("2025-01-01T11:00:00Z", now) == "2025-01-01T11:00:00.000000Z"
    assert parse_since(None) is None
    with pytest.raises(UsageError):
        parse_since("soonish", now)


def test_start_options_reach_the_docker_runtime_as_one_image_options_value(tmp_path):
    pytest.importorskip("docker")
    from sensor_manager.runtimes import DockerStartOptions, runtime_for
    from sensor_manager.runtimes.image import ImageOptions

    image = ImageOptions(tag="pinned", build=False, base_image="python:3.12-slim")
    runtime = runtime_for("docker", ProjectLayout.at(tmp_path), DockerStartOptions(project_name="demo-1", image=image))
    assert runtime.image_options is image
