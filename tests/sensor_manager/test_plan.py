"""build_plan, resolve_plan, select_sensors and the persisted plan (real files under tmp_path)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetcore.errors import PlanChangedError, UsageError
from fleetcore.naming import SENSOR_ID_PATTERN, is_valid_code
from sensor_manager.config import Config, bundled_cities
from sensor_manager.layout import ProjectLayout
from sensor_manager.plan import (
    build_plan,
    bump_epoch,
    load_plan,
    plan_totals,
    resolve_plan,
    save_plan,
    select_sensors,
)

TABLE = [c["name"] for c in bundled_cities().values()]


def make_config(**values) -> Config:
    return Config.model_validate(values)


def ids(plan) -> list[str]:
    return [s.sensor_id for s in plan.sensors]


def test_default_plan_shape():
    plan = build_plan(make_config())
    assert len(plan.sensors) == 25 and plan.fleet_epoch == 1
    assert plan.cities == ("Amsterdam", "Berlin", "London", "New_York", "Tokyo")
    for sensor in plan.sensors:
        assert SENSOR_ID_PATTERN.fullmatch(sensor.sensor_id)
        assert sensor.sensor_id == f"{sensor.safe_city}_{sensor.code}" and is_valid_code(sensor.code)
        assert sensor.db_path == f"data/{sensor.safe_city}/{sensor.code}/sensor_data.db"
        assert sensor.instance_id.startswith("i-") and len(sensor.instance_id) == 18
        assert sensor.installation_date > sensor.manufacture_date


def test_display_name_kept_and_id_made_safe():
    plan = build_plan(make_config(cities=[{"name": "são paulo"}], sensors_per_city=2))
    assert {s.city for s in plan.sensors} == {"São Paulo"}
    assert all(s.sensor_id.startswith("Sao_Paulo_") for s in plan.sensors)
    assert plan.sensors[0].timezone == "America/Sao_Paulo"


def test_coordinates_are_jittered_within_a_few_km():
    plan = build_plan(make_config(sensors_per_city=50, cities=[{"name": "Berlin"}]))
    centre = bundled_cities()["berlin"]
    for s in plan.sensors:
        assert abs(s.latitude - centre["latitude"]) < 0.03  # ~3.3 km
        assert abs(s.longitude - centre["longitude"]) < 0.05  # ~3.4 km at 52°N
    assert len({(s.latitude, s.longitude) for s in plan.sensors}) == 50


def test_device_variants_come_from_the_configured_tables():
    devices = {
        "manufacturers": [{"name": "OnlyCo"}],
        "models": [{"name": "M-1", "weight": 1}, {"name": "M-2", "weight": 1000}],
        "firmware_versions": [{"name": "9.9.9"}],
    }
    plan = build_plan(make_config(devices=devices, sensors_per_city=40))
    assert {s.manufacturer for s in plan.sensors} == {"OnlyCo"}
    assert {s.firmware_version for s in plan.sensors} == {"9.9.9"}
    models = [s.model for s in plan.sensors]
    assert models.count("M-2") > models.count("M-1")


def test_plan_is_identical_in_another_interpreter_with_other_hash_seed(tmp_path):
    # Determinism across processes: hash randomisation must not leak into ids or values.
    script = "import json; from sensor_manager.config import Config; from sensor_manager.plan import build_plan; print(json.dumps(build_plan(Config()).to_dict()))"
    outputs = {
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                       env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1
    assert json.loads(outputs.pop()) == build_plan(make_config()).to_dict()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(min_value=0, max_value=2**63 - 1),
    cities=st.lists(st.sampled_from(TABLE), min_size=1, max_size=6, unique=True),
    before=st.integers(min_value=1, max_value=8),
    extra=st.integers(min_value=1, max_value=8),
)
def test_growing_sensors_per_city_keeps_the_first_ones(seed, cities, before, extra):
    city_list = [{"name": c} for c in cities]
    small = build_plan(make_config(seed=seed, cities=city_list, sensors_per_city=before))
    large = build_plan(make_config(seed=seed, cities=city_list, sensors_per_city=before + extra))
    kept = {(s.safe_city, s.index): s for s in large.sensors}
    assert all(kept[(s.safe_city, s.index)] == s for s in small.sensors)


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**63 - 1),
    cities=st.lists(st.sampled_from(TABLE), min_size=1, max_size=10, unique=True),
    per_city=st.integers(min_value=1, max_value=40),
)
def test_ids_and_codes_are_unique_across_the_fleet(seed, cities, per_city):
    plan = build_plan(make_config(seed=seed, cities=[{"name": c} for c in cities], sensors_per_city=per_city))
    codes = [s.code for s in plan.sensors]
    assert len(set(codes)) == len(codes) == len(cities) * per_city
    assert len(set(ids(plan))) == len(codes)


def test_codes_stay_unique_when_4_characters_collide():
    # 40,000 sensors make 4-character collisions near certain; later sensors take longer codes.
    plan = build_plan(make_config(sensors_per_city=10_000, cities=[{"name": c} for c in TABLE[:4]]))
    codes = [s.code for s in plan.sensors]
    assert len(set(codes)) == len(codes)
    assert any(len(c) > 4 for c in codes) and all(4 <= len(c) <= 8 for c in codes)


def test_selecting_cities_never_changes_ids():
    config = make_config(max_cities=2)
    assert ids(build_plan(config)) == [i for i in ids(build_plan(make_config())) if i.split("_")[0] in ("Amsterdam", "Berlin")]


def test_max_cities_above_the_list_takes_the_next_bundled_cities():
    plan = build_plan(make_config(max_cities=8))
    assert len(plan.cities) == 8 and plan.cities[:5] == ("Amsterdam", "Berlin", "London", "New_York", "Tokyo")


# --- persistence and resolve ------------------------------------------------------------------------


@pytest.fixture
def layout(tmp_path) -> ProjectLayout:
    return ProjectLayout.at(tmp_path / "project")


def test_persist_false_never_writes(layout):
    plan = resolve_plan(make_config(), layout, persist=False)
    assert len(plan.sensors) == 25 and not layout.root.exists()


def test_first_use_persists_and_round_trips(layout):
    plan = resolve_plan(make_config(), layout, persist=True)
    assert load_plan(layout) == plan
    assert [p.name for p in layout.state.iterdir()] == ["plan.json"]  # no temp files left
    assert json.loads(layout.plan_file.read_text())["schema_version"] == 1



def test_a_plan_written_before_the_rename_still_loads(layout):
    # Older plan.json files call the safe name `city_slug`; they load unchanged and are saved as `safe_city`.
    plan = resolve_plan(make_config(), layout, persist=True)
    document = json.loads(layout.plan_file.read_text())
    for sensor in document["sensors"]:
        sensor["city_slug"] = sensor.pop("safe_city")
    layout.plan_file.write_text(json.dumps(document))
    assert load_plan(layout) == plan
    assert {s.safe_city for s in load_plan(layout).sensors} == {"Amsterdam", "Berlin", "London", "New_York", "Tokyo"}

def test_adding_sensors_and_cities_extends_the_stored_plan(layout):
    first = resolve_plan(make_config(), layout, persist=True)
    grown = resolve_plan(make_config(sensors_per_city=6, cities=[*({"name": c} for c in
                         ("Amsterdam", "Berlin", "London", "New York", "Tokyo", "Paris"))]), layout, persist=True)
    by_slot = {(s.safe_city, s.index): s for s in grown.sensors}
    assert all(by_slot[(s.safe_city, s.index)] == s for s in first.sensors)
    assert len(grown.sensors) == 36 and load_plan(layout) == grown


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"seed": 7}, "seed: 20250101 -> 7"),
        ({"sensors_per_city": 3}, "sensors_per_city 5 -> 3"),
        ({"cities": [{"name": "Amsterdam"}, {"name": "Berlin"}]}, "city removed: London"),
        ({"cities": [{"name": "Amsterdam", "timezone": "UTC"}]}, "Amsterdam: timezone Europe/Amsterdam -> UTC"),
    ],
)
def test_other_changes_need_replan(layout, change, expected):
    resolve_plan(make_config(), layout, persist=True)
    before = layout.plan_file.read_bytes()
    with pytest.raises(PlanChangedError) as raised:
        resolve_plan(make_config(**change), layout, persist=True)
    assert expected in str(raised.value) and "--replan" in str(raised.value)
    assert layout.plan_file.read_bytes() == before


def test_replan_adopts_the_new_plan_and_lists_retired_sensors(layout):
    first = resolve_plan(make_config(), layout, persist=True)
    sensor_dir = layout.root / first.sensors[-1].sensor_dir
    sensor_dir.mkdir(parents=True)
    replanned = resolve_plan(make_config(sensors_per_city=3), layout, persist=True, replan=True)
    assert len(replanned.sensors) == 15
    assert {s.sensor_id for s in replanned.retired} == {s.sensor_id for s in first.sensors if s.index >= 3}
    assert sensor_dir.exists()  # data of retired sensors stays on disk
    assert load_plan(layout).retired == replanned.retired


def test_replan_keeps_the_fleet_epoch(layout):
    resolve_plan(make_config(), layout, persist=True)
    bump_epoch(layout)
    assert resolve_plan(make_config(seed=3), layout, persist=True, replan=True).fleet_epoch == 2


def test_bump_epoch_increments_and_persists(layout):
    resolve_plan(make_config(), layout, persist=True)
    assert bump_epoch(layout).fleet_epoch == 2
    assert load_plan(layout).fleet_epoch == 2
    assert resolve_plan(make_config(), layout, persist=False).fleet_epoch == 2


def test_bump_epoch_without_a_plan_is_a_usage_error(layout):
    with pytest.raises(UsageError):
        bump_epoch(layout)


def test_a_corrupt_stored_plan_is_reported(layout):
    layout.state.mkdir(parents=True)
    layout.plan_file.write_text("{not json")
    with pytest.raises(UsageError, match="plan.json: cannot read the stored plan"):
        resolve_plan(make_config(), layout, persist=True)
    assert resolve_plan(make_config(), layout, persist=True, replan=True).sensors


def test_save_plan_is_atomic_over_an_existing_file(layout):
    plan = build_plan(make_config())
    save_plan(layout, plan)
    save_plan(layout, bump_epoch(layout))
    assert sorted(p.name for p in layout.state.iterdir()) == ["plan.json"]


def test_a_city_selection_is_not_a_removal(layout):
    resolve_plan(make_config(), layout, persist=True)
    config = make_config()
    config.selected_cities = ["Berlin"]
    selected = resolve_plan(config, layout, persist=True)
    assert selected.cities == ("Berlin",) and len(load_plan(layout).sensors) == 25


# --- select_sensors -----------------------------------------------------------------------------------


def test_select_by_city_name_slug_or_sensor_id():
    plan = build_plan(make_config())
    tokyo = plan.by_city()["Tokyo"][0].sensor_id
    chosen = select_sensors(plan, ["new york", "new-york", tokyo.lower()])
    assert chosen.cities == ("New_York", "Tokyo") and len(chosen.sensors) == 6


def test_select_unknown_target_names_it():
    with pytest.raises(UsageError, match="'Atlantis'"):
        select_sensors(build_plan(make_config()), ["Atlantis"])


def test_totals():
    totals = plan_totals(build_plan(make_config()), 2.0)
    assert totals == {"cities": 5, "sensors": 25, "readings_per_second": 50.0, "rows_per_day": 4_320_000,
                      "disk_bytes_per_day": 648_000_000}


@settings(max_examples=15, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(min_value=0, max_value=3), st.integers(min_value=0, max_value=4)),
                      min_size=1, max_size=4))
def test_stored_identities_survive_any_sequence_of_growth(steps):
    import tempfile

    with tempfile.TemporaryDirectory() as root:
        layout = ProjectLayout.at(root)
        cities, per_city = 1, 1
        seen: dict[tuple[str, int], object] = {}
        for add_cities, add_sensors in steps:
            cities, per_city = cities + add_cities, per_city + add_sensors
            config = make_config(cities=[{"name": c} for c in TABLE[:cities]], sensors_per_city=per_city)
            plan = resolve_plan(config, layout, persist=True)
            assert len(plan.sensors) == cities * per_city
            assert len({s.code for s in plan.sensors}) == len(plan.sensors)
            for sensor in plan.sensors:
                assert seen.setdefault((sensor.safe_city, sensor.index), sensor) == sensor
