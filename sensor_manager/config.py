"""The project config: one YAML file, validated with pydantic, with environment and flag overrides.

Lookup: --config > $SENSOR_MANAGER_CONFIG > <project-dir>/sensor-manager.yaml > bundled default.
Precedence of values: flag > environment > file > default.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sensor_manager.errors import ConfigError
from sensor_manager.simulator.settings import (
    AnomalySettings,
    DeviceSettings,
    NormalParameters,
    SimulationSettings,
)
from uploader.settings import UploaderSettings

BUNDLED_CONFIG = Path(__file__).resolve().parent.parent / "config" / "sensor-manager.yaml"


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=True)


class CityConfig(StrictModel):
    name: str = Field(min_length=1, max_length=100)
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    timezone: str | None = None


class Config(StrictModel):
    project: str = Field("sensor-demo", min_length=1, max_length=63)
    seed: int = Field(20250101, ge=0, le=2**63 - 1)
    sensors_per_city: int = Field(5, ge=1, le=10_000)
    max_cities: int | None = Field(None, ge=1, le=10_000)
    runtime: Literal["auto", "docker", "local"] = "auto"
    simulation: SimulationSettings = SimulationSettings()
    normal_parameters: NormalParameters = NormalParameters()
    anomalies: AnomalySettings = AnomalySettings()
    devices: DeviceSettings = DeviceSettings()
    cities: list[CityConfig] = Field(default_factory=list)
    uploader: UploaderSettings = UploaderSettings()
    # Where the config came from, for messages; not a key users set.
    source_path: str | None = Field(None, exclude=True)


def load_config(
    config_path: str | Path | None = None,
    project_dir: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> Config:
    """Find, read, expand and validate the config; raise ConfigError listing every problem.

    `overrides` are dotted keys from CLI flags (e.g. {"sensors_per_city": 3}); they win over everything.
    """
    path = Path(config_path) if config_path else BUNDLED_CONFIG
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError([f"{path}: {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]) from None
    config.source_path = str(path)
    return config
