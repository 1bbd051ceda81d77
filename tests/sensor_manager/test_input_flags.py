"""Out-of-range and duplicate flag values are usage errors: one `error:` line naming the flag, exit 2."""
from __future__ import annotations

import json

import pytest

from sensor_manager.cli import app
from sensor_manager.config import MAX_FLEET_SENSORS
from sensor_manager.durations import MAX_DURATION_DAYS

FLEET = ["--cities", "London", "--sensors-per-city", "1"]


@pytest.mark.parametrize(("args", "message"), [
    (["query", "--since", "99999999999d"], f"error: --since '99999999999d': at most {MAX_DURATION_DAYS}d"),
    (["query", "--limit", "99999999999999999999"], "error: --limit 99999999999999999999: at most 1000000"),
    (["logs", "--since", "99999999999d"], f"error: --since '99999999999d': at most {MAX_DURATION_DAYS}d"),
    (["simulate", *FLEET, "--duration", "1", "--backfill", "1000000d"], f"error: --backfill '1000000d': at most {MAX_DURATION_DAYS}d"),
    (["simulate", *FLEET, "--duration", "1", "--backfill", "99999999999999999999d"], "error: --backfill '99999999999999999999d': at most"),
    (["simulate", *FLEET, "--duration", "1", "--backfill", "soon"], "error: --backfill 'soon': use a duration like"),
    (["simulate", *FLEET, "--duration", "1e300"], "error: --duration '1e300': use a duration like"),
    (["simulate", *FLEET, "--duration", "99999999999d"], f"error: --duration '99999999999d': at most {MAX_DURATION_DAYS}d"),
    (["logs", "--tail", "99999999999999999999"], "error: --tail 99999999999999999999: must be between 0 and 1000000"),
])
def test_out_of_range_values_are_usage_errors(runner, project_dir, tree_listing, args, message):
    before = tree_listing(project_dir)
    result = runner.invoke(app, [*args, "--project-dir", str(project_dir)])
    assert result.exit_code == 2, (result.stdout, result.stderr, result.exception)
    assert result.stderr.startswith(message)
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert tree_listing(project_dir) == before


def test_simulate_duration_takes_the_duration_grammar(runner, project_dir):
    result = runner.invoke(app, ["simulate", *FLEET, "--duration", "0.01s", "--json", "--project-dir", str(project_dir)])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["sensors"] == 1


@pytest.mark.parametrize("since", ["1d", "1h30m", "90", "2025-01-01T12:00"])
def test_every_since_flag_takes_the_same_grammar(runner, project_dir, since):
    for command in ("query", "logs"):
        result = runner.invoke(app, [command, "--since", since, "--project-dir", str(project_dir)])
        assert result.exit_code == 0, (command, result.stderr)


@pytest.mark.parametrize("command", [["plan"], ["config", "validate"], ["simulate", "--duration", "1"], ["start"], ["compose"]])
@pytest.mark.parametrize(("cities", "message"), [
    ("London,London", "error: --cities: 'London' is listed twice; name each city once"),
    ("Berlin,São Paulo,sao paulo", "error: --cities: 'sao paulo' and 'São Paulo' are the same city, listed twice"),
])
def test_a_city_named_twice_in_cities_is_an_error_as_in_the_config(runner, project_dir, tree_listing, command, cities, message):
    before = tree_listing(project_dir)
    result = runner.invoke(app, [*command, "--cities", cities, "--project-dir", str(project_dir)])
    assert result.exit_code == 2, (result.stdout, result.stderr, result.exception)
    assert result.stderr.startswith(message)
    assert tree_listing(project_dir) == before


def test_a_city_named_without_latin_letters_is_planned(runner, project_dir):
    config = project_dir / "sensor-manager.yaml"
    config.write_text("cities:\n  - {name: 東京, latitude: 35.6762, longitude: 139.6503, timezone: Asia/Tokyo}\n"
                      "  - Berlin\nsensors_per_city: 2\n", encoding="utf-8")
    for args in ([], ["--cities", "東京"]):
        result = runner.invoke(app, ["plan", "--json", "--config", str(config), "--project-dir", str(project_dir), *args])
        assert result.exit_code == 0, result.stderr
        tokyo = [s for s in json.loads(result.stdout)["sensors"] if s["city"] == "東京"]
        assert len(tokyo) == 2
        assert all(s["sensor_id"].startswith("xn_1lqs71d_") and s["db_path"].startswith("data/xn_1lqs71d/") for s in tokyo)


@pytest.mark.parametrize(("args", "env", "where"), [
    (["--sensors-per-city", "10000"], {}, "error: --sensors-per-city: 10,000 sensors per city x 26 cities = 260,000 sensors;"),
    ([], {"SENSORS_PER_CITY": "4000"}, "error: environment variable SENSORS_PER_CITY='4000': sensors_per_city: 4,000 sensors"),
])
def test_a_fleet_beyond_one_machine_is_refused_naming_the_key(runner, project_dir, tree_listing, monkeypatch, args, env, where):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    before = tree_listing(project_dir)
    result = runner.invoke(app, ["plan", "--json", "--max-cities", "26", "--project-dir", str(project_dir), *args])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith(where)
    assert f"one machine runs at most {MAX_FLEET_SENSORS:,}" in result.stderr and result.stdout == ""
    assert tree_listing(project_dir) == before


def test_a_config_file_beyond_one_machine_names_its_key(runner, project_dir):
    config = project_dir / "sensor-manager.yaml"
    config.write_text("cities: [Berlin, Paris, London, Tokyo, Sydney, Madrid, Seoul, Dubai, Rome, Cairo, Mumbai]\nsensors_per_city: 10000\n")
    result = runner.invoke(app, ["config", "validate", "--project-dir", str(project_dir)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {config}: sensors_per_city: 10,000 sensors per city x 11 cities = 110,000 sensors")
