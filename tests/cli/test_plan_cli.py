"""`plan` through the CLI: the golden plan, totals, flags, never writing state, --replan."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sensor_manager.cli import app
from sensor_manager.config import load_config
from sensor_manager.layout import ProjectLayout
from sensor_manager.plan import resolve_plan

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "plan-default.json"
# Rewrite the golden file only on request, then review the diff: UPDATE_GOLDEN=1 pytest tests/cli/test_plan_cli.py
UPDATE_GOLDEN = os.environ.get("UPDATE_GOLDEN") == "1"


def plan_json(runner, project_dir, *args: str) -> dict:
    result = runner.invoke(app, ["plan", "--json", "--project-dir", str(project_dir), *args])
    assert result.exit_code == 0, (result.stderr, result.exception)
    return json.loads(result.stdout)


def test_default_plan_matches_the_golden_file(runner, project_dir):
    document = plan_json(runner, project_dir)
    if UPDATE_GOLDEN:
        GOLDEN.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert document == json.loads(GOLDEN.read_text(encoding="utf-8"))


def test_plan_json_shape(runner, project_dir):
    document = plan_json(runner, project_dir)
    assert {"schema_version", "fleet_epoch", "project", "sensors", "totals"} <= set(document)
    required = {"sensor_id", "city", "code", "db_path", "latitude", "longitude", "timezone", "manufacturer", "model",
                "firmware_version", "serial_number", "seed"}
    assert all(required <= set(sensor) for sensor in document["sensors"])
    assert document["totals"] == {"cities": 5, "sensors": 25, "readings_per_second": 25.0, "rows_per_day": 2_160_000,
                                  "disk_bytes_per_day": 324_000_000}


def test_plan_is_the_same_on_every_run(runner, project_dir):
    assert plan_json(runner, project_dir) == plan_json(runner, project_dir)


def test_plan_writes_nothing(runner, project_dir, tree_listing):
    before = tree_listing(project_dir)
    plan_json(runner, project_dir)
    result = runner.invoke(app, ["plan", "--project-dir", str(project_dir)])
    assert result.exit_code == 0
    assert tree_listing(project_dir) == before == []


def test_fleet_flags_shape_the_plan(runner, project_dir):
    document = plan_json(runner, project_dir, "--cities", "paris,Berlin", "--sensors-per-city", "3", "--rate", "2",
                         "--seed", "9")
    assert [s["city"] for s in document["sensors"]] == ["Berlin"] * 3 + ["Paris"] * 3
    assert document["seed"] == 9 and document["totals"]["readings_per_second"] == 12.0


def test_flags_before_the_command_too(runner, project_dir, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("sensors_per_city: 2\ncities: [{name: Rome}]\n")
    result = runner.invoke(app, ["--config", str(config), "--project-dir", str(project_dir), "plan", "--json"])
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)["sensors"]) == 2


def test_growth_keeps_the_first_sensors(runner, project_dir):
    five = plan_json(runner, project_dir)["sensors"]
    six = plan_json(runner, project_dir, "--sensors-per-city", "6")["sensors"]
    assert {s["sensor_id"] for s in five} < {s["sensor_id"] for s in six}
    assert all(s in six for s in five)


def test_table_shows_totals(runner, project_dir):
    result = runner.invoke(app, ["plan", "--project-dir", str(project_dir), "--cities", "Berlin"])
    assert result.exit_code == 0
    assert "5 sensors in 1 cities · 5 readings/s · ~64.8 MB/day" in result.stdout
    assert "Berlin_" in result.stdout and "\x1b[" not in result.stdout  # NO_COLOR is set by conftest


def _persist(project_dir: Path, **overrides) -> None:
    resolve_plan(load_config(project_dir=project_dir, overrides=overrides), ProjectLayout.at(project_dir), persist=True)


def test_plan_shows_the_stored_plan_and_its_epoch(runner, project_dir):
    _persist(project_dir)
    stored = json.loads((project_dir / "state" / "plan.json").read_text())
    stored["fleet_epoch"] = 4
    (project_dir / "state" / "plan.json").write_text(json.dumps(stored))
    assert plan_json(runner, project_dir)["fleet_epoch"] == 4


def test_a_changed_config_is_refused_with_a_diff(runner, project_dir, tree_listing):
    _persist(project_dir)
    before = tree_listing(project_dir)
    result = runner.invoke(app, ["plan", "--project-dir", str(project_dir), "--sensors-per-city", "3", "--seed", "8"])
    assert result.exit_code == 2
    assert "error: the config no longer matches the stored plan" in result.stderr
    assert "error:   - seed: 20250101 -> 8" in result.stderr and "--replan" in result.stderr
    assert "Traceback" not in result.stderr and tree_listing(project_dir) == before


def test_replan_previews_without_writing(runner, project_dir, tree_listing):
    _persist(project_dir)
    before = tree_listing(project_dir)
    document = plan_json(runner, project_dir, "--sensors-per-city", "3", "--replan")
    assert len(document["sensors"]) == 15 and len(document["retired"]) == 10
    assert tree_listing(project_dir) == before


def test_adding_sensors_is_shown_as_an_extension(runner, project_dir):
    _persist(project_dir)
    document = plan_json(runner, project_dir, "--sensors-per-city", "6")
    assert len(document["sensors"]) == 30


@pytest.mark.parametrize("args", [["plan", "--help"], ["config", "validate", "--help"]])
def test_help_has_a_line_and_an_example(runner, args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "Example: ./sensor_manager.py" in result.stdout


def test_validate_prints_the_resolved_config_with_secrets_redacted(runner, project_dir, monkeypatch):
    monkeypatch.setenv("COSMOS_ENDPOINT", "https://acct.documents.azure.com")
    monkeypatch.setenv("COSMOS_KEY", "dmVyeXNlY3JldGtleQ==")
    (project_dir / "sensor-manager.yaml").write_text("uploader:\n  sinks:\n    cosmos: {enabled: false}\n")
    result = runner.invoke(app, ["config", "validate", "--json", "--project-dir", str(project_dir)])
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["valid"] is True and document["schema_version"] == 1
    assert document["config"]["uploader"]["sinks"]["cosmos"] == {**document["config"]["uploader"]["sinks"]["cosmos"],
                                                                   "enabled": False, "key": "***"}
    text = runner.invoke(app, ["config", "validate", "--project-dir", str(project_dir)])
    assert text.exit_code == 0 and "dmVyeXNlY3JldGtleQ==" not in text.stdout + text.stderr
    assert "key: '***'" in text.stdout and "is valid" in text.stderr


def test_validate_quiet_prints_only_the_config(runner, project_dir):
    result = runner.invoke(app, ["config", "validate", "--quiet", "--project-dir", str(project_dir)])
    assert result.exit_code == 0 and result.stderr == "" and "sensors_per_city: 5" in result.stdout
