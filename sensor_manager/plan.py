"""FleetPlan: the one source of sensor identity (ids, paths, coordinates, device variants, seeds).

Computed once from the config, deterministically; every runtime renders and drives it and never
invents ids, paths or seeds of its own. Every value comes from SHA-256 of (seed, city, index) or a
`random.Random` seeded from it, so a plan is the same on every machine and every run.

The persisted plan (`state/plan.json`) holds the sensors a runtime has used. A later config that only
adds cities or sensors extends it; any other change needs `replan=True` (see `resolve_plan`).
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field, fields, replace
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Sequence

from fleetcore.atomicfiles import write_atomic
from fleetcore.errors import PlanChangedError, UsageError
from fleetcore.naming import city_service_slug, code_candidates, safe_city_name, stable_int

if TYPE_CHECKING:
    from sensor_manager.config import CityConfig, Config
    from sensor_manager.layout import ProjectLayout

PLAN_SCHEMA_VERSION = 1
JITTER_RADIUS_KM = 3.0
KM_PER_DEGREE = 111.32
DEPLOYMENT_TYPES = (("stationary_unit", 5.0), ("rooftop", 2.0), ("wall_mounted", 2.0), ("pole_mounted", 1.5), ("indoor", 1.0))
SENSOR_TYPE = "environmental_monitoring"


@dataclass(frozen=True)
class PlannedSensor:
    sensor_id: str  # "<City>_<CODE>"
    city: str  # display name, e.g. "São Paulo" (the `location` column)
    safe_city: str  # safe name, e.g. "Sao_Paulo" (directory and id prefix)
    code: str  # 4-8 chars of [A-Z0-9], unique across the fleet
    index: int  # position within its city, 0-based; growth appends
    latitude: float
    longitude: float
    timezone: str  # IANA zone
    db_path: str  # relative to the project dir: data/<City>/<CODE>/sensor_data.db
    manufacturer: str
    model: str
    firmware_version: str
    serial_number: str
    manufacture_date: str  # ISO date
    installation_date: str  # ISO date
    deployment_type: str
    height_meters: float
    orientation_degrees: float
    instance_id: str
    sensor_type: str
    seed: int  # this sensor's own RNG seed

    @property
    def sensor_dir(self) -> str:
        return self.db_path.rsplit("/", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        # Every field is a plain value: no deep copy needed (asdict's costs seconds on a large fleet).
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PlannedSensor":
        # Plans written before the glossary rename call the safe name `city_slug`.
        if "city_slug" in data:
            data = {("safe_city" if key == "city_slug" else key): value for key, value in data.items()}
        return cls(**data)


@dataclass(frozen=True)
class FleetPlan:
    project: str
    seed: int
    fleet_epoch: int
    sensors: tuple[PlannedSensor, ...]
    cities: tuple[str, ...] = field(default=())  # safe city names in plan order
    # Sensors dropped by a --replan whose data stays on disk (listed, never deleted implicitly).
    retired: tuple[PlannedSensor, ...] = field(default=())
    ship_generation: int = 0  # `clean --reship` bumps it: uploaders ship every source from its first row again
    # Firmware rollouts (live/rollout.py), oldest first: which sensors changed firmware, when and from which seq.
    rollouts: tuple[dict[str, Any], ...] = field(default=())

    def by_city(self) -> dict[str, list[PlannedSensor]]:
        """Sensors grouped by safe city name, in plan order."""
        groups: dict[str, list[PlannedSensor]] = {}
        for sensor in self.sensors:
            groups.setdefault(sensor.safe_city, []).append(sensor)
        return groups

    def sensor(self, sensor_id: str) -> PlannedSensor:
        for candidate in self.sensors:
            if candidate.sensor_id == sensor_id:
                return candidate
        raise KeyError(sensor_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": PLAN_SCHEMA_VERSION,
            "project": self.project,
            "seed": self.seed,
            "fleet_epoch": self.fleet_epoch,
            "sensors": [s.to_dict() for s in self.sensors],
            "retired": [s.to_dict() for s in self.retired],
            # Written once it differs from 0, so plans that never re-shipped keep their exact bytes.
            **({"ship_generation": self.ship_generation} if self.ship_generation else {}),
            **({"rollouts": list(self.rollouts)} if self.rollouts else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FleetPlan":
        sensors = tuple(PlannedSensor.from_dict(s) for s in data["sensors"])
        retired = tuple(PlannedSensor.from_dict(s) for s in data.get("retired", ()))
        return cls(data["project"], data["seed"], data["fleet_epoch"], sensors, _city_order(sensors), retired,
                   int(data.get("ship_generation", 0)), tuple(data.get("rollouts", ())))


def _city_order(sensors: Sequence[PlannedSensor]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s.safe_city for s in sensors))


# --- building ------------------------------------------------------------------------------------


def _weighted(rng: random.Random, choices: Sequence[tuple[str, float]]) -> str:
    total = sum(weight for _, weight in choices)
    point = rng.random() * total
    for name, weight in choices:
        point -= weight
        if point < 0:
            return name
    return choices[-1][0]


def _jitter(rng: random.Random, latitude: float, longitude: float) -> tuple[float, float]:
    """A point uniformly distributed within JITTER_RADIUS_KM of the centre."""
    distance = JITTER_RADIUS_KM * math.sqrt(rng.random())
    bearing = 2 * math.pi * rng.random()
    lat = latitude + distance * math.cos(bearing) / KM_PER_DEGREE
    lat = max(-90.0, min(90.0, lat))
    lon_scale = max(math.cos(math.radians(latitude)), 0.01)
    lon = longitude + distance * math.sin(bearing) / (KM_PER_DEGREE * lon_scale)
    lon = (lon + 180.0) % 360.0 - 180.0
    return round(lat, 6), round(lon, 6)


def _make_sensor(config: "Config", city: "CityConfig", index: int, code: str) -> PlannedSensor:
    safe = safe_city_name(city.name)
    rng = random.Random(stable_int("attributes", config.seed, safe, index))
    # CityConfig's validator fills all three from the city table or refuses the city
    assert city.latitude is not None and city.longitude is not None and city.timezone is not None
    latitude, longitude = _jitter(rng, city.latitude, city.longitude)
    devices = config.devices
    manufacturer = _weighted(rng, [(c.name, c.weight) for c in devices.manufacturers])
    model = _weighted(rng, [(c.name, c.weight) for c in devices.models])
    firmware = _weighted(rng, [(c.name, c.weight) for c in devices.firmware_versions])
    manufactured = date(2021, 1, 1) + timedelta(days=rng.randrange(0, 3 * 365))
    installed = manufactured + timedelta(days=rng.randrange(14, 180))
    return PlannedSensor(
        sensor_id=f"{safe}_{code}",
        city=city.name,
        safe_city=safe,
        code=code,
        index=index,
        latitude=latitude,
        longitude=longitude,
        timezone=city.timezone,
        db_path=f"data/{safe}/{code}/sensor_data.db",
        manufacturer=manufacturer,
        model=model,
        firmware_version=firmware,
        serial_number=f"SENSOR-{rng.getrandbits(24):06X}",
        manufacture_date=manufactured.isoformat(),
        installation_date=installed.isoformat(),
        deployment_type=_weighted(rng, DEPLOYMENT_TYPES),
        height_meters=round(1.5 + 10.5 * rng.random(), 1),
        orientation_degrees=round(360.0 * rng.random(), 1) % 360.0,
        instance_id=f"i-{stable_int('instance', config.seed, safe, index, bits=64):016x}",
        sensor_type=SENSOR_TYPE,
        seed=stable_int("sensor", config.seed, safe, index),
    )


def _assign_codes(seed: int, slots: Sequence[tuple[str, int]], taken: set[str]) -> dict[tuple[str, int], str]:
    """A code per (safe city name, index), unique among `taken` and each other.

    Slots are coded by index first, then city order, so growing sensors_per_city never changes the
    codes of existing sensors; a collision only lengthens the later sensor's code.
    """
    taken = set(taken)
    codes: dict[tuple[str, int], str] = {}
    city_position = {safe: pos for pos, safe in enumerate(dict.fromkeys(safe for safe, _ in slots))}
    for safe, index in sorted(slots, key=lambda slot: (slot[1], city_position[slot[0]])):
        code = next(c for c in code_candidates(seed, safe, index) if c not in taken)
        taken.add(code)
        codes[(safe, index)] = code
    return codes


def _build_sensors(
    config: "Config", cities: Sequence["CityConfig"], keep: Sequence[PlannedSensor] = ()
) -> tuple[PlannedSensor, ...]:
    """Sensors for `cities` x sensors_per_city in plan order; sensors in `keep` are reused as they are."""
    kept = {(s.safe_city, s.index): s for s in keep}
    slots = [(safe_city_name(c.name), i) for c in cities for i in range(config.sensors_per_city)]
    new_slots = [slot for slot in slots if slot not in kept]
    codes = _assign_codes(config.seed, new_slots, {s.code for s in keep})
    by_safe_name = {safe_city_name(c.name): c for c in cities}
    return tuple(kept.get(slot) or _make_sensor(config, by_safe_name[slot[0]], slot[1], codes[slot]) for slot in slots)


def _plan(config: "Config", sensors: Sequence[PlannedSensor], fleet_epoch: int, retired=(), ship_generation: int = 0) -> FleetPlan:
    return FleetPlan(config.project, config.seed, fleet_epoch, tuple(sensors), _city_order(sensors), tuple(retired),
                     ship_generation)


def _selected(plan: FleetPlan, config: "Config") -> FleetPlan:
    """The part of a plan the config runs (after --cities / --max-cities)."""
    wanted = {safe_city_name(c.name) for c in config.fleet_cities()}
    sensors = tuple(s for s in plan.sensors if s.safe_city in wanted)
    return replace(plan, sensors=sensors, cities=_city_order(sensors))


def build_plan(config: "Config", fleet_epoch: int = 1) -> FleetPlan:
    """The fleet the config describes: pure and deterministic (same config, same plan, on any machine).

    Codes are computed over every configured city, so selecting a subset (--cities, --max-cities)
    never changes the ids of the selected sensors.
    """
    full = _plan(config, _build_sensors(config, config.cities), fleet_epoch)
    return _selected(full, config)


# --- persistence ---------------------------------------------------------------------------------


def load_plan(layout: "ProjectLayout") -> FleetPlan | None:
    """The stored plan, or None if there is none yet."""
    path = layout.plan_file
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read the stored plan ({exc}); move it away or rerun with --replan") from None
    if not isinstance(data, dict) or data.get("schema_version") != PLAN_SCHEMA_VERSION:
        raise UsageError(
            f"{path}: unsupported plan schema_version {data.get('schema_version') if isinstance(data, dict) else None!r}"
            f" (expected {PLAN_SCHEMA_VERSION}); move it away or rerun with --replan"
        )
    try:
        return FleetPlan.from_dict(data)
    except (KeyError, TypeError) as exc:
        raise UsageError(f"{path}: malformed stored plan ({exc}); move it away or rerun with --replan") from None


def save_plan(layout: "ProjectLayout", plan: FleetPlan) -> None:
    """Write state/plan.json atomically."""
    write_atomic(layout.plan_file, json.dumps(plan.to_dict(), indent=2, ensure_ascii=False) + "\n")


def bump_epoch(layout: "ProjectLayout") -> FleetPlan:
    """Increment the stored plan's fleet_epoch (for `reset`) and persist it; the same sensors otherwise."""
    return _bump_stored(layout, "fleet_epoch", "nothing to reset")


def bump_ship_generation(layout: "ProjectLayout") -> FleetPlan:
    """Move the stored plan to a new ship generation (for `clean --reship`) and persist it."""
    return _bump_stored(layout, "ship_generation", "nothing to ship again")


def _bump_stored(layout: "ProjectLayout", counter: str, nothing: str) -> FleetPlan:
    stored = load_plan(layout)
    if stored is None:
        raise UsageError(f"{layout.plan_file}: no stored plan yet; {nothing}")
    bumped = replace(stored, **{counter: getattr(stored, counter) + 1})
    save_plan(layout, bumped)
    return bumped


# --- comparing a config with the stored plan -----------------------------------------------------


def _sensor_list(sensors: Sequence[PlannedSensor], limit: int = 6) -> str:
    ids = [s.sensor_id for s in sensors]
    return ", ".join(ids[:limit]) + (f", … ({len(ids)} in all)" if len(ids) > limit else "")


def plan_changes(stored: FleetPlan, config: "Config") -> list[str]:
    """Why the config cannot simply extend the stored plan: one readable line per change (empty: it can)."""
    changes: list[str] = []
    if stored.seed != config.seed:
        changes.append(f"seed: {stored.seed} -> {config.seed} (every sensor id would change)")
    if stored.project != config.project:
        changes.append(f"project: {stored.project!r} -> {config.project!r}")
    configured = {safe_city_name(c.name): c for c in config.cities}
    fresh = {(s.safe_city, s.index): s for s in _build_sensors(config, config.cities)}
    for safe, sensors in stored.by_city().items():
        city = configured.get(safe)
        if city is None:
            changes.append(f"city removed: {sensors[0].city} (sensors {_sensor_list(sensors)})")
            continue
        if city.name != sensors[0].city:
            changes.append(f"city renamed: {sensors[0].city!r} -> {city.name!r}")
        if city.timezone != sensors[0].timezone:
            changes.append(f"{city.name}: timezone {sensors[0].timezone} -> {city.timezone}")
        dropped = [s for s in sensors if s.index >= config.sensors_per_city]
        if dropped:
            changes.append(
                f"{city.name}: sensors_per_city {len(sensors)} -> {config.sensors_per_city} (drops {_sensor_list(dropped)})"
            )
        moved = [s for s in sensors if (safe, s.index) in fresh and _moved(s, fresh[(safe, s.index)])]
        if moved and stored.seed == config.seed:
            changes.append(f"{city.name}: city centre moved (affects {_sensor_list(moved)})")
    return changes


def _moved(old: PlannedSensor, new: PlannedSensor) -> bool:
    return abs(old.latitude - new.latitude) > 1e-6 or abs(old.longitude - new.longitude) > 1e-6


def _ordered(config: "Config", sensors: Sequence[PlannedSensor]) -> list[PlannedSensor]:
    """Sensors in config city order, then index (stored cities no longer configured go last)."""
    position = {safe_city_name(c.name): pos for pos, c in enumerate(config.cities)}
    return sorted(sensors, key=lambda s: (position.get(s.safe_city, len(position)), s.index))


def resolve_plan(config: "Config", layout: "ProjectLayout", *, persist: bool, replan: bool = False) -> FleetPlan:
    """The plan to run: the stored plan, extended by what the config adds; persisted when `persist`.

    A changed seed, a removed or renamed city, or fewer sensors per city raise PlanChangedError with a
    readable diff, unless `replan` is set: then the config's plan replaces the stored one and the sensors
    it drops are listed in `retired` (their data stays on disk). `persist=False` never writes.
    Returns the selected part of the plan (after --cities / --max-cities).
    """
    selected = {safe_city_name(c.name) for c in config.fleet_cities()}
    try:
        stored = load_plan(layout)
    except UsageError:
        if not replan:
            raise
        stored = None
    if stored is None:
        full = _build_sensors(config, config.cities)
        plan = _plan(config, [s for s in full if s.safe_city in selected], _recovered_epoch(layout, full))
        if persist:
            save_plan(layout, plan)
        return _selected(plan, config)

    changes = plan_changes(stored, config)
    if changes and not replan:
        raise PlanChangedError(
            f"the config no longer matches the stored plan {layout.plan_file}:\n"
            + "\n".join(f"  - {line}" for line in changes)
            + "\nRerun with --replan to adopt the new plan (data of dropped sensors stays on disk), or restore the config."
        )
    if changes:
        keep_cities = {s.safe_city for s in stored.sensors} | selected
        sensors = [s for s in _build_sensors(config, config.cities) if s.safe_city in keep_cities]
        ids = {s.sensor_id for s in sensors}
        retired = [s for s in (*stored.retired, *stored.sensors) if s.sensor_id not in ids]
        retired = list({s.sensor_id: s for s in retired}.values())
        plan = _plan(config, sensors, stored.fleet_epoch, retired, stored.ship_generation)
    else:
        stored_cities = {s.safe_city for s in stored.sensors}
        cities = [c for c in config.cities if safe_city_name(c.name) in stored_cities | selected]
        sensors = _ordered(config, _build_sensors(config, cities, keep=stored.sensors))
        plan = _plan(config, sensors, stored.fleet_epoch, stored.retired, stored.ship_generation)
    plan = replace(plan, rollouts=stored.rollouts)
    if persist and plan != stored:
        save_plan(layout, plan)
    return _selected(plan, config)


def fleet_plan(config: "Config", layout: "ProjectLayout", *, persist: bool, replan: bool = False,
               keep_stored: bool = False) -> tuple[FleetPlan, list[str]]:
    """The plan to run and, when the stored one was kept, how the config differs from it.

    The config's plan (the stored one, extended) runs; a config that would change it is an error unless
    `replan`, or, with `keep_stored` (restart, reset, start without fleet flags), the stored plan runs
    as is: fleet flags given to an earlier `start` (e.g. --sensors-per-city) are not in the config.
    """
    try:
        return resolve_plan(config, layout, persist=persist, replan=replan), []
    except PlanChangedError:
        stored = load_plan(layout) if keep_stored else None
        if stored is None:
            raise
        return stored, plan_changes(stored, config)


def _recovered_epoch(layout: "ProjectLayout", sensors: Sequence[PlannedSensor]) -> int:
    """A new plan's fleet_epoch: 1, or the epoch the sensors' DBs record when state/ was lost but the data was not."""
    from sensor_manager.simulator.db import highest_fleet_epoch

    if not layout.data.is_dir():
        return 1
    paths = (layout.sensor_dir(s.safe_city, s.code) / "sensor_data.db" for s in sensors)
    return highest_fleet_epoch(paths) or 1


def select_sensors(plan: FleetPlan, targets: Sequence[str]) -> FleetPlan:
    """The part of a plan named by targets: city display names, safe names or service slugs (any case), or sensor ids."""
    if not targets:
        return plan
    chosen: set[str] = set()
    for target in targets:
        key = target.strip().casefold()
        matches = {
            s.sensor_id
            for s in plan.sensors
            if key in (s.sensor_id.casefold(), s.city.casefold(), s.safe_city.casefold(), city_service_slug(s.safe_city))
        }
        if not matches:
            known = ", ".join(dict.fromkeys(s.city for s in plan.sensors))
            raise UsageError(f"unknown city or sensor {target!r}; the plan has: {known}")
        chosen |= matches
    sensors = tuple(s for s in plan.sensors if s.sensor_id in chosen)
    return replace(plan, sensors=sensors, cities=_city_order(sensors))


BYTES_PER_ROW = 150  # an edge-DB row with its index entries, measured on the writer's schema


def plan_totals(plan: FleetPlan, readings_per_second: float) -> dict[str, Any]:
    """Fleet-wide figures for `plan`: sensors, readings per second, expected edge-DB growth per day."""
    rate = len(plan.sensors) * readings_per_second
    return {
        "cities": len(plan.cities),
        "sensors": len(plan.sensors),
        "readings_per_second": rate,
        "rows_per_day": round(rate * 86_400),
        "disk_bytes_per_day": round(rate * 86_400 * BYTES_PER_ROW),
    }


def describe_plan(config: "Config", layout: "ProjectLayout", *, replan: bool = False) -> dict[str, Any]:
    """What `plan` shows: the fleet `config` gives (persisting nothing), its totals and retired ids."""
    fleet = resolve_plan(config, layout, persist=False, replan=replan)
    return {
        "fleet_epoch": fleet.fleet_epoch,
        "project": fleet.project,
        "seed": fleet.seed,
        "totals": plan_totals(fleet, config.simulation.readings_per_second),
        "sensors": [sensor.to_dict() for sensor in fleet.sensors],
        "retired": [sensor.sensor_id for sensor in fleet.retired],
    }
