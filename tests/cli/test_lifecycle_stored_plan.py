"""A fleet started with fleet flags runs as planned: services run their slice of the stored plan, and
restart / reset reuse that plan instead of asking for a --replan they did not have (issue 10, findings 8 and 14)."""
from __future__ import annotations

import json

import pytest

from fleetcore.statusfiles import read_json_object
from sensor_manager.cli import app
from sensor_manager.layout import ProjectLayout
from sensor_manager.runtimes import supervisor as sv

pytestmark = pytest.mark.slow

# Paris is a bundled city that this config does not list: `start --cities Berlin,Paris` adds it.
CONFIG = """\
project: stored-plan
seed: 11
sensors_per_city: 1
runtime: local
simulation:
  readings_per_second: 5
  status_interval_seconds: 0.5
cities:
  - name: Berlin
uploader:
  interval_seconds: 1
"""


@pytest.fixture
def cli(runner, project_dir):
    (project_dir / "sensor-manager.yaml").write_text(CONFIG)

    def invoke(*args: str):
        result = runner.invoke(app, ["--project-dir", str(project_dir), *args])
        assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
        return result

    yield invoke
    assert invoke("stop").exit_code == 0


def _plan(project_dir) -> dict:
    return json.loads(ProjectLayout.at(project_dir).plan_file.read_text())


def test_fleet_flags_survive_restart_and_reset(cli, project_dir):
    started = cli("start", "--cities", "Berlin,Paris", "--sensors-per-city", "2", "--wait", "--wait-timeout", "90")
    assert started.exit_code == 0, started.stderr
    ids = sorted(s["sensor_id"] for s in _plan(project_dir)["sensors"])
    assert len(ids) == 4 and sum(i.startswith("Paris_") for i in ids) == 2

    # The sensor service is given its ids, not `--cities`, which the plan check would read as the whole fleet.
    spec = read_json_object(sv.spec_path(ProjectLayout.at(project_dir)))
    argv = next(s["argv"] for s in spec["services"] if s["name"] == "sensor-berlin")
    assert "--cities" not in argv and "--sensors-per-city" not in argv
    berlin = [s["sensor_id"] for s in _plan(project_dir)["sensors"] if s["city"] == "Berlin"]
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--sensor-id"] == berlin

    for args in (["restart"], ["restart", "sensor-paris"]):
        result = cli(*args)
        assert result.exit_code == 0, result.stderr
        assert "warning: the config differs from the stored plan (Berlin: sensors_per_city 2 -> 1" in result.stderr
        assert "city removed: Paris" in result.stderr
        assert "the stored plan runs (--replan adopts the config's)" in result.stderr
        assert "rerun with --replan" not in result.stderr.lower()
    healthy = cli("start", "--wait", "--wait-timeout", "90")  # every service of the running fleet is healthy
    assert healthy.exit_code == 0 and "Already running: 4 services" in healthy.stderr, healthy.stderr

    reset = cli("reset", "--yes", "--wait", "--wait-timeout", "90")
    assert reset.exit_code == 0, reset.stderr
    assert "fleet_epoch is now 2; started 4 services" in reset.stderr
    assert sorted(s["sensor_id"] for s in _plan(project_dir)["sensors"]) == ids


def test_replan_is_accepted_where_the_message_names_it(cli, project_dir):
    assert cli("plan").exit_code == 0
    assert cli("start", "--sensors-per-city", "2", "--dry-run").exit_code == 0
    for command in ("start", "restart", "reset"):
        assert "--replan" in cli(command, "--help").stdout
    # A conflicting flag on start is an error naming --replan, and --replan adopts the config's plan.
    assert cli("start", "--cities", "Berlin,Paris").exit_code == 0
    assert cli("stop").exit_code == 0
    refused = cli("start", "--seed", "12")
    assert refused.exit_code == 2 and "Rerun with --replan" in refused.stderr
    replanned = cli("start", "--replan", "--wait", "--wait-timeout", "90")
    assert replanned.exit_code == 0, replanned.stderr
    plan = _plan(project_dir)
    assert [s["city"] for s in plan["sensors"]] == ["Berlin"] and [s["city"] for s in plan["retired"]] == ["Paris"]
