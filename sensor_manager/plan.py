"""FleetPlan: the one source of sensor identity (ids, paths, coordinates, device variants, seeds).

Computed once from the config, deterministically; every runtime renders and drives it and never
invents ids, paths or seeds of its own.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PLAN_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class PlannedSensor:
    sensor_id: str  # "<City>_<CODE>"
    city: str  # display name, e.g. "São Paulo" (the `location` column)
    city_slug: str  # safe name, e.g. "Sao_Paulo" (directory and id prefix)
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
        return asdict(self)


@dataclass(frozen=True)
class FleetPlan:
    project: str
    seed: int
    fleet_epoch: int
    sensors: tuple[PlannedSensor, ...]
    cities: tuple[str, ...] = field(default=())  # city slugs in plan order

    def by_city(self) -> dict[str, list[PlannedSensor]]:
        """Sensors grouped by city slug, in plan order."""
        groups: dict[str, list[PlannedSensor]] = {}
        for sensor in self.sensors:
            groups.setdefault(sensor.city_slug, []).append(sensor)
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
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FleetPlan":
        sensors = tuple(PlannedSensor(**s) for s in data["sensors"])
        cities = tuple(dict.fromkeys(s.city_slug for s in sensors))
        return cls(data["project"], data["seed"], data["fleet_epoch"], sensors, cities)
