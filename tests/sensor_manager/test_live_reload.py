"""Hot reload, `set`'s editing and rollout selection, without a running fleet."""
from __future__ import annotations

import json

import pytest
import yaml

from fleetcore.errors import ConfigError, UsageError
from sensor_manager.config import load_config
from sensor_manager.config_reference import is_reloadable
from sensor_manager.layout import ProjectLayout
from sensor_manager.live.editing import edited_text, parse_assignments, restart_needed, write_edited
from sensor_manager.live.reload import read_record, reload_config
from sensor_manager.live.rollout import choose_sensors, start_rollout, undo_rollout
from sensor_manager.plan import load_plan, resolve_plan
from sensor_manager.runtimes.compose_files import role_config_dir
from sensor_manager.runtimes.compose_render import write_role_configs
from sensor_manager.runtimes.config_watch import ConfigWatcher
from sensor_manager.runtimes.local import LocalRuntime

CONFIG = """\
# top comment
project: reload-test
sensors_per_city: 10
simulation:
  readings_per_second: 1  # rate
cities:
  - name: Berlin
  - name: Paris
"""


@pytest.fixture
def project(project_dir):
    (project_dir / "sensor-manager.yaml").write_text(CONFIG)
    layout = ProjectLayout.at(project_dir)
    config = load_config(None, project_dir)
    plan = resolve_plan(config, layout, persist=True)
    return layout, config, plan


def _edit(layout, old: str, new: str):
    path = layout.root / "sensor-manager.yaml"
    path.write_text(path.read_text().replace(old, new))
    return path


def test_reloadable_table_covers_the_live_keys_only():
    assert is_reloadable("simulation.readings_per_second") and is_reloadable("anomalies.types.<type>.weight")
    assert is_reloadable("uploader.sinks.delta.enabled") and is_reloadable("uploader.interval_seconds")
    assert not is_reloadable("simulation.commit_interval_seconds") and not is_reloadable("uploader.sinks.delta.path")
    assert not is_reloadable("anomalies_extra") and not is_reloadable("seed")


def test_a_valid_change_rewrites_only_the_settings_file_it_touches(project):
    layout, config, plan = project
    LocalRuntime(layout).render(plan, config)
    uploader = (layout.state / "uploader-settings.json").read_bytes()
    path = _edit(layout, "readings_per_second: 1 ", "readings_per_second: 7 ")
    record = reload_config(layout, "local", path)
    assert record.outcome == "applied" and record.written == [str(layout.state / "simulator-settings.json")]
    assert json.loads((layout.state / "simulator-settings.json").read_text())["simulation"]["readings_per_second"] == 7
    assert (layout.state / "uploader-settings.json").read_bytes() == uploader
    assert reload_config(layout, "local", path).outcome == "unchanged"


@pytest.mark.parametrize(("old", "new", "error"), [
    ("readings_per_second: 1 ", "readings_per_second: -1 ", "simulation.readings_per_second"),
    ("readings_per_second: 1 ", "readings_per_second: 1\n  commit_interval_seconds: 5 ",
     "needs restart: simulation.commit_interval_seconds"),
    ("project: reload-test", "project: reload-test\nuploader:\n  sinks:\n    delta:\n      path: elsewhere",
     "needs restart: uploader.sinks.delta.path"),
])
def test_a_rejected_change_rewrites_nothing_and_is_recorded(project, old, new, error):
    layout, config, plan = project
    LocalRuntime(layout).render(plan, config)
    before = {p.name: p.read_bytes() for p in layout.state.glob("*-settings.json")}
    record = reload_config(layout, "local", _edit(layout, old, new))
    assert record.rejected and any(error in e for e in record.errors), record.errors
    assert {p.name: p.read_bytes() for p in layout.state.glob("*-settings.json")} == before
    assert read_record(layout) == record


def test_under_compose_the_role_config_directories_are_rewritten(project):
    layout, config, plan = project
    write_role_configs(layout, config, plan)
    sensor_settings = role_config_dir(layout, "sensor") / "simulator-settings.json"
    assert json.loads(sensor_settings.read_text())["simulation"]["readings_per_second"] == 1
    path = _edit(layout, "project: reload-test", "project: reload-test\nuploader:\n  interval_seconds: 3")
    path = _edit(layout, "readings_per_second: 1 ", "readings_per_second: 4 ")
    record = reload_config(layout, "docker", path)
    assert record.outcome == "applied", record.errors
    assert json.loads(sensor_settings.read_text())["simulation"]["readings_per_second"] == 4
    uploader = yaml.safe_load((role_config_dir(layout, "uploader") / "sensor-manager.yaml").read_text())
    assert uploader["uploader"]["interval_seconds"] == 3


def test_the_watcher_reloads_a_change_but_not_the_file_it_started_with(project):
    layout, config, plan = project
    LocalRuntime(layout).render(plan, config)
    notes = []
    watcher = ConfigWatcher(layout, notes.append)
    watcher.watch(str(layout.root / "sensor-manager.yaml"))
    watcher.poll(0.0)
    assert read_record(layout) is None and notes == []
    _edit(layout, "readings_per_second: 1 ", "readings_per_second: -1 ")
    watcher.poll(1.0)
    assert read_record(layout).rejected and "rejected" in notes[-1]


def test_set_keeps_comments_and_validates_before_writing(project):
    layout, _, _ = project
    path = layout.root / "sensor-manager.yaml"
    write_edited(path, layout.root, parse_assignments(["simulation.readings_per_second=20", "uploader.stage=raw"]))
    text = path.read_text()
    assert text.startswith("# top comment\n") and "readings_per_second: 20 # rate" in text and "  - name: Paris" in text
    assert load_config(path, layout.root).simulation.readings_per_second == 20
    with pytest.raises(ConfigError, match="simulation.readings_per_second"):
        write_edited(path, layout.root, parse_assignments(["simulation.readings_per_second=0"]))
    assert path.read_text() == text
    assert not list(layout.root.glob(".*.tmp"))


def test_set_assignments_are_checked_for_form_and_reloadability():
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_assignments(["simulation.readings_per_second"])
    with pytest.raises(UsageError, match="give a value"):
        parse_assignments(["anomalies.probability="])
    assignments = parse_assignments(["anomalies={probability: 0.2}", "simulation.commit_max_rows=5"])
    assert assignments[0].value == {"probability": 0.2}
    assert restart_needed(assignments) == ["simulation.commit_max_rows"]
    assert edited_text("a:\n- 1\nb: 2\n", parse_assignments(["b=3"]), "x") == "a:\n- 1\nb: 3\n"


def test_rollout_selection_is_deterministic_and_undo_restores(project):
    layout, _, plan = project
    chosen = choose_sensors(plan, "1.6.0", percent=20)
    assert len(chosen) == 4 and chosen == choose_sensors(plan, "1.6.0", percent=20)
    assert set(s.sensor_id for s in choose_sensors(plan, "1.6.0", percent=20, cities=["Paris"])) <= {
        s.sensor_id for s in plan.sensors if s.city == "Paris"}
    record = start_rollout(layout, "1.6.0", percent=20)
    assert set(record["sensors"]) == {s.sensor_id for s in chosen}
    stored = load_plan(layout)
    assert sum(s.firmware_version == "1.6.0" for s in stored.sensors) == 4
    config = load_config(None, layout.root)
    assert resolve_plan(config, layout, persist=True).rollouts == stored.rollouts  # a later start keeps them
    undo_rollout(layout)
    assert [s.firmware_version for s in load_plan(layout).sensors] == [s.firmware_version for s in plan.sensors]
    with pytest.raises(UsageError, match="no rollout to undo"):
        undo_rollout(layout)


def test_set_on_the_bundled_default_creates_the_project_file_from_it(project_dir):
    from sensor_manager.config import CONFIG_FILE_NAME, bundled_file
    from sensor_manager.live.fleet import config_file, set_keys

    layout = ProjectLayout.at(project_dir)
    path = project_dir / "sensor-manager.yaml"
    with pytest.raises(UsageError, match="no project config file to reload"):
        config_file(layout, None)
    applied = set_keys(layout, None, ["simulation.readings_per_second=7"])
    assert applied.config == path and not applied.running
    bundled = bundled_file(CONFIG_FILE_NAME).read_text()
    text = path.read_text()
    assert [line for line in text.splitlines() if line.lstrip().startswith("#")] == \
           [line for line in bundled.splitlines() if line.lstrip().startswith("#")]  # its comments kept
    assert load_config(None, project_dir).simulation.readings_per_second == 7
