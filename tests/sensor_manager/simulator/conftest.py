"""Fixtures for simulator tests: identities, run options, and a project config file."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sensor_manager.simulator.identity import SensorIdentity
from sensor_manager.simulator.runner import RunOptions, SensorSpec
from sensor_manager.simulator.settings import AnomalySettings, DeviceSettings, NormalParameters, SimulationSettings


def make_identity(sensor_id: str = "Berlin_AB12", *, city: str = "Berlin", timezone: str = "Europe/Berlin",
                  manufacturer: str = "EnvSense", model: str = "TempVibe-2000", firmware_version: str = "2.0.1",
                  seed: int = 7) -> SensorIdentity:
    return SensorIdentity(
        sensor_id=sensor_id, location=city, latitude=52.52, longitude=13.405, timezone=timezone,
        manufacturer=manufacturer, model=model, firmware_version=firmware_version, serial_number="SENSOR-ABC123",
        manufacture_date="2022-01-01", deployment_type="rooftop", installation_date="2022-03-01",
        height_meters=3.5, orientation_degrees=90.0, instance_id="i-0123456789abcdef",
        sensor_type="environmental_monitoring", seed=seed,
    )


def make_spec(root: Path, **kwargs) -> SensorSpec:
    identity = make_identity(**kwargs)
    city, code = identity.sensor_id.rsplit("_", 1)
    return SensorSpec(identity, root / city / code)


def make_options(*, rate: float = 1.0, duration: float = 0.0, backfill: float = 0.0, status_file: Path | None = None,
                 anomalies: AnomalySettings | None = None, **simulation) -> RunOptions:
    return RunOptions(
        simulation=SimulationSettings(readings_per_second=rate, run_time_seconds=duration, **simulation),
        normal_parameters=NormalParameters(),
        anomalies=anomalies or AnomalySettings(),
        devices=DeviceSettings(),
        backfill_seconds=backfill,
        status_file=status_file,
    )


class FixedClock:
    """A wall clock that stands still (backfill determinism)."""

    def __init__(self, epoch_seconds: float):
        self.now = epoch_seconds

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def write_config(project_dir: Path):
    """`write_config(**sections)`: a config file in the project with two small cities; returns its path."""

    def write(**sections) -> Path:
        document = {
            "project": "sim-test",
            "seed": 4242,
            "sensors_per_city": 1,
            "cities": [{"name": "Berlin"}, {"name": "St. John's"}],
            **sections,
        }
        path = project_dir / "sensor-manager.yaml"
        path.write_text(yaml.safe_dump(document, allow_unicode=True))
        return path

    return write
