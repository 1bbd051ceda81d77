"""The pydantic models of the project config; each section's own model lives with the code it configures."""
from __future__ import annotations

import functools
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from fleetcore.models import StrictModel
from fleetcore.naming import city_clash_key, city_name_problem, safe_city_name
from sensor_manager.config.bundled import DEFAULT_CITIES, bundled_cities
from sensor_manager.config.problems import _did_you_mean
from sensor_manager.config.redaction import redact
from sensor_manager.runtimes.compose_settings import DockerSettings
from sensor_manager.runtimes.swarm_settings import SwarmSettings
from sensor_manager.simulator.settings import (
    AnomalySettings,
    DeviceSettings,
    FaultSettings,
    NormalParameters,
    SimulationSettings,
)
from uploader.settings import UploaderSettings


@functools.cache
def _available_zones() -> frozenset[str]:
    import zoneinfo

    return frozenset(zoneinfo.available_timezones())


def _is_zone(name: str) -> bool:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


class CityConfig(StrictModel):
    """A city; a name from the bundled table needs nothing else (its centre and zone are filled in)."""

    name: str = Field(min_length=1, max_length=100)
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    timezone: str | None = None

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        problem = city_name_problem(name)
        if problem:
            raise ValueError(f"{name!r} {problem}; it would not make a safe directory name")
        return name

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str | None) -> str | None:
        if zone is not None and not _is_zone(zone):
            raise ValueError(f"unknown IANA time zone {zone!r}{_did_you_mean(zone, _available_zones())}")
        return zone

    @model_validator(mode="after")
    def _complete_from_table(self) -> "CityConfig":
        known = bundled_cities().get(self.name.casefold())
        if known is not None:
            self.name = known["name"]
            for key in ("latitude", "longitude", "timezone"):
                if getattr(self, key) is None:
                    setattr(self, key, known[key])
        elif self.latitude is None or self.longitude is None:
            raise ValueError(
                f"unknown city {self.name!r}: not in the bundled city table; give its latitude and longitude"
                f" (and timezone){_did_you_mean(self.name, [c['name'] for c in bundled_cities().values()])}"
            )
        if self.timezone is None:
            self.timezone = "UTC"
        return self


def _default_cities() -> list[CityConfig]:
    return [CityConfig(name=name) for name in DEFAULT_CITIES]


# What one machine hosts. Measured (benchmarks/simulator_density.py): 10,000 sensors at 1 reading/s take
# 2.1 GB RSS and 66.5 % of a core, so 100,000 need ~21 GB and ~7 cores (and as many containers on docker).
MAX_FLEET_SENSORS = 100_000


class Config(StrictModel):
    project: str = Field("sensor-demo", min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    seed: int = Field(20250101, ge=0, le=2**63 - 1)
    sensors_per_city: int = Field(5, ge=1, le=10_000)
    max_cities: int | None = Field(None, ge=1, le=10_000)
    runtime: Literal["auto", "docker", "local", "swarm"] = "auto"
    simulation: SimulationSettings = SimulationSettings()
    normal_parameters: NormalParameters = NormalParameters()
    anomalies: AnomalySettings = AnomalySettings()
    devices: DeviceSettings = DeviceSettings()
    faults: FaultSettings = FaultSettings()
    cities: list[CityConfig] = Field(default_factory=_default_cities, min_length=1, max_length=10_000)
    uploader: UploaderSettings = UploaderSettings()
    docker: DockerSettings = DockerSettings()
    swarm: SwarmSettings = SwarmSettings()
    # Where the config came from, for messages; not a key users set.
    source_path: str | None = Field(None, exclude=True)
    # Safe names chosen by --cities (None: every configured city); not a key users set.
    selected_cities: list[str] | None = Field(None, exclude=True)
    # Keys of a --cosmos-config file with no equivalent, each with why (warnings); not a key users set.
    notes: list[str] = Field(default_factory=list, exclude=True)

    @field_validator("cities", mode="before")
    @classmethod
    def _names_alone(cls, cities: Any) -> Any:
        # `cities: [Berlin, Paris]` is short for `cities: [{name: Berlin}, {name: Paris}]`.
        if isinstance(cities, list):
            return [{"name": c} if isinstance(c, str) else c for c in cities]
        return cities

    @field_validator("cities")
    @classmethod
    def _distinct_directories(cls, cities: list[CityConfig]) -> list[CityConfig]:
        seen: dict[str, tuple[int, str]] = {}
        problems = []
        for index, city in enumerate(cities):
            key = city_clash_key(city.name)
            if key in seen:
                first, other = seen[key]
                if other.casefold() == city.name.casefold():
                    problems.append(f"cities[{index}]: {city.name!r} is listed twice (also cities[{first}])")
                else:
                    problems.append(
                        f"cities[{index}]: {city.name!r} and {other!r} (cities[{first}]) both become"
                        f" {safe_city_name(city.name)}; rename one"
                    )
            else:
                seen[key] = (index, city.name)
        if problems:
            raise ValueError("; ".join(problems))
        return cities

    @model_validator(mode="after")
    def _fill_to_max_cities(self) -> "Config":
        # As in the seed, max_cities larger than the list takes the next cities of the bundled table.
        if self.max_cities and self.max_cities > len(self.cities):
            have = {city_clash_key(c.name) for c in self.cities}
            for entry in bundled_cities().values():
                if len(self.cities) >= self.max_cities:
                    break
                if city_clash_key(entry["name"]) not in have:
                    self.cities.append(CityConfig(name=entry["name"]))
        return self

    def fleet_cities(self) -> list[CityConfig]:
        """The cities that run: the --cities selection (or all), then the first max_cities."""
        cities = self.cities
        if self.selected_cities is not None:
            wanted = {city_clash_key(name) for name in self.selected_cities}
            cities = [c for c in cities if city_clash_key(c.name) in wanted]
        return cities[: self.max_cities] if self.max_cities else list(cities)

    def redacted(self) -> dict[str, Any]:
        """The resolved config as plain data with every secret replaced by `***` (for display)."""
        return redact(self.model_dump(mode="json"))
