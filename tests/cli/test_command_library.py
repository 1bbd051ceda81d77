"""`plan`, `compose` and `build` are thin: each renders what one library function returns."""
from __future__ import annotations

import json

import pytest
import yaml

from fleetcore.errors import EngineUnavailableError, UsageError
from sensor_manager.cli import app
from sensor_manager.config import load_config
from sensor_manager.layout import ProjectLayout
from sensor_manager.plan import describe_plan, load_plan
from sensor_manager.runtimes import image as images
from sensor_manager.runtimes.compose import compose_stack

FLEET = {"select_cities": "Amsterdam,Berlin", "sensors_per_city": 2}


@pytest.fixture
def no_engine(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")


def _setup(project_dir):
    layout = ProjectLayout.at(project_dir)
    return layout, load_config(None, layout.root, FLEET)


def test_describe_plan_is_what_plan_json_prints_and_persists_nothing(runner, project_dir, tree_listing):
    layout, config = _setup(project_dir)
    before = tree_listing(project_dir)
    document = describe_plan(config, layout)
    assert tree_listing(project_dir) == before and load_plan(layout) is None
    assert {s["city"] for s in document["sensors"]} == {"Amsterdam", "Berlin"}
    assert document["totals"]["sensors"] == 4 and document["totals"]["cities"] == 2 and document["retired"] == []
    result = runner.invoke(app, ["plan", "--json", "--project-dir", str(project_dir), "--cities", "Amsterdam,Berlin", "--sensors-per-city", "2"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"schema_version": 1, **document}


def test_compose_stack_dry_run_renders_and_writes_nothing(project_dir, no_engine, tree_listing):
    layout, config = _setup(project_dir)
    before = tree_listing(project_dir)
    result = compose_stack(layout, config, tag="t1", project_name="demo_1", dry_run=True)
    assert tree_listing(project_dir) == before and result.compose_file is None
    stack = yaml.safe_load(result.stack_text)
    assert stack["name"] == "demo_1" and sorted(stack["services"]) == sorted(result.services) and len(result.services) == 6
    assert result.image == "sensor-manager:t1"


def test_compose_stack_writes_the_compose_file_and_output_the_cli_prints(runner, project_dir, no_engine):
    layout, config = _setup(project_dir)
    result = compose_stack(layout, config, tag="t1", output=project_dir / "stack.yml")
    assert result.compose_file == project_dir / "state/compose/docker-compose.yml"
    assert result.output == project_dir / "stack.yml" and result.output.read_text() == result.compose_file.read_text()
    same = compose_stack(layout, config, tag="t1", output=result.compose_file)
    assert same.output is None  # --output naming the compose file itself is not a second file
    printed = runner.invoke(app, ["compose", "--project-dir", str(project_dir), "--cities", "Amsterdam,Berlin",
                                  "--sensors-per-city", "2", "--tag", "t1", "--json"])
    assert printed.exit_code == 0, printed.output
    document = json.loads(printed.stdout)
    assert (document["project_name"], document["image"], document["services"]) == (result.project_name, result.image, result.services)


def test_compose_stack_without_an_engine_needs_a_tag(project_dir, no_engine):
    layout, config = _setup(project_dir)
    with pytest.raises(EngineUnavailableError, match="pass --tag T"):
        compose_stack(layout, config)
    with pytest.raises(UsageError):
        compose_stack(layout, config, tag="t1", project_name="Bad Name!")


@pytest.mark.parametrize("kwargs, message", [
    ({"push": True}, "--push and --registry go together"),
    ({"registry": "ghcr.io/me"}, "--push and --registry go together"),
    ({"tag": "t1", "no_tag": True}, "--tag and --no-tag exclude each other"),
    ({"tag": "latest"}, "latest"),
])
def test_build_refuses_flag_mistakes_before_touching_an_engine(project_dir, no_engine, kwargs, message):
    layout, config = _setup(project_dir)
    with pytest.raises(UsageError, match=message):
        images.build(layout, config, **kwargs)


def test_build_without_an_engine_is_engine_unavailable(runner, project_dir, no_engine):
    layout, config = _setup(project_dir)
    with pytest.raises(EngineUnavailableError):
        images.build(layout, config)
    assert runner.invoke(app, ["build", "--project-dir", str(project_dir)]).exit_code == 3
