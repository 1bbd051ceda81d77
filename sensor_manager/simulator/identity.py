"""A sensor's identity: the constant columns of its rows, and `identity.json` in the seed's format.

The plan is the source of identity; `identity.json` is written from it for consumers that know the
seed's nested format. `load_identity` also reads the seed's flat legacy format
(`{id, location, latitude, longitude, timezone, manufacturer, model, firmware_version}`), filling
the fields it lacks deterministically from the sensor id.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fleetcore.atomicfiles import write_atomic
from fleetcore.errors import UsageError
from fleetcore.naming import safe_city_name, stable_int

DEFAULT_SENSOR_TYPE = "environmental_monitoring"


@dataclass(frozen=True)
class SensorIdentity:
    sensor_id: str
    location: str  # city display name
    latitude: float
    longitude: float
    timezone: str
    manufacturer: str
    model: str
    firmware_version: str
    serial_number: str
    manufacture_date: str
    deployment_type: str
    installation_date: str
    height_meters: float
    orientation_degrees: float
    instance_id: str
    sensor_type: str
    seed: int

    @classmethod
    def from_plan(cls, sensor) -> "SensorIdentity":
        """From a `PlannedSensor` (the plan is the one source of identity)."""
        values = {f.name: getattr(sensor, f.name) for f in fields(cls) if f.name != "location"}
        return cls(location=sensor.city, **values)

    def column_values(self, columns: tuple[str, ...]) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in columns)

    def to_seed_json(self) -> dict[str, Any]:
        """The seed simulator's nested identity document."""
        return {
            "sensor_id": self.sensor_id,
            "location": {
                "city": self.location,
                "coordinates": {"latitude": self.latitude, "longitude": self.longitude},
                "timezone": self.timezone,
            },
            "device_info": {
                "manufacturer": self.manufacturer,
                "model": self.model,
                "firmware_version": self.firmware_version,
                "serial_number": self.serial_number,
                "manufacture_date": self.manufacture_date,
            },
            "deployment": {
                "deployment_type": self.deployment_type,
                "installation_date": self.installation_date,
                "height_meters": self.height_meters,
                "orientation_degrees": self.orientation_degrees,
            },
            "metadata": {
                "instance_id": self.instance_id,
                "sensor_type": self.sensor_type,
                "generation_seed": self.seed,
                "identity_generation_timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        }


def write_identity(path: Path, identity: SensorIdentity) -> None:
    """Write `identity.json` atomically, unless it already holds the same identity."""
    document = identity.to_seed_json()
    try:
        current = json.loads(path.read_text())
        current.get("metadata", {}).pop("identity_generation_timestamp", None)
        wanted = json.loads(json.dumps(document))
        wanted["metadata"].pop("identity_generation_timestamp")
        if current == wanted:
            return
    except (OSError, ValueError, AttributeError):
        pass
    write_atomic(path, json.dumps(document, indent=2) + "\n")


def load_identity(path: Path, fleet_seed: int) -> SensorIdentity:
    """Read an identity file in the seed's nested format or its flat legacy format."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise UsageError(f"{path}: cannot read identity file: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: an identity file holds a JSON object")
    try:
        flat = _flatten_nested(data) if isinstance(data.get("device_info"), dict) else _flatten_legacy(data)
        return _complete(flat, fleet_seed)
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{path}: incomplete identity: missing or invalid {exc}; see the seed's identity format") from None


def _flatten_nested(data: dict[str, Any]) -> dict[str, Any]:
    location = data.get("location") or {}
    if isinstance(location, str):
        location = {"city": location}
    coordinates = location.get("coordinates") or {}
    device, deployment, metadata = data["device_info"], data.get("deployment") or {}, data.get("metadata") or {}
    return {
        "sensor_id": data["sensor_id"],
        "location": location["city"],
        "latitude": coordinates["latitude"],
        "longitude": coordinates["longitude"],
        "timezone": location.get("timezone"),
        **{k: device.get(k) for k in ("manufacturer", "model", "firmware_version", "serial_number", "manufacture_date")},
        **{k: deployment.get(k) for k in ("deployment_type", "installation_date", "height_meters", "orientation_degrees")},
        "instance_id": metadata.get("instance_id"),
        "sensor_type": metadata.get("sensor_type"),
    }


def _flatten_legacy(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "sensor_id": data.get("sensor_id") or data["id"],
        "location": data["location"],
        "latitude": data["latitude"],
        "longitude": data["longitude"],
        **{k: data.get(k) for k in ("timezone", "manufacturer", "model", "firmware_version")},
    }


def _complete(flat: dict[str, Any], fleet_seed: int) -> SensorIdentity:
    """Fill absent optional fields from a Faker seeded by the sensor id (same id, same values)."""
    from faker import Faker

    sensor_id = str(flat["sensor_id"])
    seed = stable_int("sensor", fleet_seed, sensor_id)
    fake = Faker()
    fake.seed_instance(seed)
    manufactured = fake.date_between(datetime(2021, 1, 1).date(), datetime(2023, 12, 31).date())
    defaults = {
        "timezone": "UTC",
        "manufacturer": "SensorTech",
        "model": "EnvMonitor-3000",
        "firmware_version": "1.4.0",
        "serial_number": f"SENSOR-{fake.hexify('^^^^^^', upper=True)}",
        "manufacture_date": manufactured.isoformat(),
        "deployment_type": "stationary_unit",
        "installation_date": fake.date_between(manufactured, datetime(2024, 6, 30).date()).isoformat(),
        "height_meters": round(fake.pyfloat(min_value=1.5, max_value=12.0), 1),
        "orientation_degrees": round(fake.pyfloat(min_value=0, max_value=359.9), 1),
        "instance_id": f"i-{fake.hexify('^' * 16)}",
        "sensor_type": DEFAULT_SENSOR_TYPE,
    }
    values: dict[str, Any] = {k: (v if v not in (None, "") else defaults.get(k)) for k, v in flat.items()}
    for key, default in defaults.items():
        values.setdefault(key, default)
        if values[key] is None:
            values[key] = default
    values["latitude"], values["longitude"] = float(values["latitude"]), float(values["longitude"])
    values["height_meters"], values["orientation_degrees"] = float(values["height_meters"]), float(values["orientation_degrees"])
    return SensorIdentity(seed=seed, **{k: values[k] for k in _FIELDS if k != "seed"})


_FIELDS = tuple(f.name for f in fields(SensorIdentity))


def identity_dir_name(identity: SensorIdentity) -> tuple[str, str]:
    """(city directory, sensor directory) for an identity file's sensor: `<City>/<CODE>`."""
    city = safe_city_name(identity.location) or "Unknown"
    prefix = f"{city}_"
    code = identity.sensor_id[len(prefix):] if identity.sensor_id.startswith(prefix) else safe_city_name(identity.sensor_id)
    return city, code or "SENSOR"
