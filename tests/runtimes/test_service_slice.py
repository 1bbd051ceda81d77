"""A sensor service runs its slice of the stored plan, whatever the config says about the fleet (issue 10, finding 14).

`start --cities Berlin,Paris --sensors-per-city 2` on a config that lists Berlin only, with one sensor
per city: the plan holds Paris and two sensors per city, the config neither. Each runtime's sensor
command must still find its sensors (the local run is covered end to end in
tests/cli/test_lifecycle_stored_plan.py).
"""
from __future__ import annotations

import shutil

from fleetcore.statusfiles import read_json_object
from sensor_manager.config import load_config
from sensor_manager.layout import ProjectLayout
from sensor_manager.plan import resolve_plan
from sensor_manager.runtimes.compose_render import (
    CONTAINER_ROOT,
    StackInputs,
    render_stack,
    role_config_dir,
    stack_services,
    write_role_configs,
)
from sensor_manager.simulator.hosting import HostingRequest, plan_hosting

CONFIG = """\
project: slices
seed: 5
sensors_per_city: 1
cities:
  - name: Berlin
"""


def _stored_plan_and_plain_config(project_dir):
    (project_dir / "sensor-manager.yaml").write_text(CONFIG)
    layout = ProjectLayout.at(project_dir)
    flagged = load_config(project_dir / "sensor-manager.yaml", project_dir, {"select_cities": "Berlin,Paris", "sensors_per_city": 2})
    plan = resolve_plan(flagged, layout, persist=True)
    return layout, plan, load_config(project_dir / "sensor-manager.yaml", project_dir)


def _simulate_args(command: list[str]) -> dict[str, list[str]]:
    args: dict[str, list[str]] = {}
    for flag, value in zip(command, command[1:], strict=False):
        if flag.startswith("--"):
            args.setdefault(flag, []).append(value)
    return args


def test_the_container_command_hosts_its_sensors_from_the_rendered_config(project_dir, tmp_path):
    layout, plan, config = _stored_plan_and_plain_config(project_dir)
    assert {s.city for s in plan.sensors} == {"Berlin", "Paris"} and len(plan.sensors) == 4
    write_role_configs(layout, config, plan)
    inputs = StackInputs(layout=layout, project_name="sm-slices", image="sensor-manager:test", user="1000:1000")
    stack = render_stack(plan, config, inputs)
    # The container sees the sensor role directory as <project>/state (plan.json and the config).
    container = ProjectLayout.at(tmp_path / "container")
    shutil.copytree(role_config_dir(layout, "sensor"), container.state)
    for service in stack_services(plan, inputs.settings):
        if service.role != "sensor":
            continue
        args = _simulate_args(stack["services"][service.name]["command"])
        assert args["--project-dir"] == [CONTAINER_ROOT] and "--cities" not in args
        container_config = load_config(container.state / "sensor-manager.yaml", container.root)
        request = HostingRequest(sensor_ids=tuple(args["--sensor-id"]))
        specs, _ = plan_hosting(container_config, container, request)
        assert [spec.identity.sensor_id for spec in specs] == service.sensor_ids


def test_the_local_command_hosts_its_city_with_a_city_missing_from_the_config(project_dir):
    from sensor_manager.runtimes import supervisor as sv
    from sensor_manager.runtimes.local import LocalRuntime

    layout, plan, config = _stored_plan_and_plain_config(project_dir)
    LocalRuntime(layout).render(plan, config)
    for entry in read_json_object(sv.spec_path(layout))["services"]:
        if entry["role"] != "sensor":
            continue
        argv = entry["argv"]
        args = _simulate_args(argv[argv.index("simulate"):])
        assert "--cities" not in args and "--sensors-per-city" not in args
        specs, options = plan_hosting(config, layout, HostingRequest(sensor_ids=tuple(args["--sensor-id"])))
        assert [spec.identity.sensor_id for spec in specs] == entry["sensors"]
        assert options.status_file == layout.status_dir / f"{entry['name']}.json"
