"""The project config: one YAML file, validated with pydantic, with environment and flag overrides.

Lookup: --config > $SENSOR_MANAGER_CONFIG > <project-dir>/sensor-manager.yaml > bundled default.
Precedence of values: flag > environment > file > default. A `.env` in the project dir is read with
dotenv semantics (the process environment wins). Every problem is collected and reported at once, one
line each: `<where>: <key.path>: <problem>`.

Modules: `models` (Config), `safe_yaml` (reading the file), `sources` (lookup, `.env`, environment,
`${VAR}`, flags, each value's origin), `messages` (pydantic errors as lines), `problems`, `redaction`,
`bundled` (the shipped files). Import from `sensor_manager.config`, not from the modules.
"""
from __future__ import annotations

import math
import os
from typing import Any

from pydantic import ValidationError

from fleetcore.errors import ConfigError
from sensor_manager.config.bundled import bundled_cities, bundled_file
from sensor_manager.config.cosmos_seed import (
    KEY_VARIABLE,
    apply_seed_overlay,
    literal_key_replaced,
    map_seed_config,
    read_seed_config,
    section_yaml,
)
from sensor_manager.config.messages import _describe
from sensor_manager.config.models import MAX_FLEET_SENSORS, CityConfig, Config
from sensor_manager.config.problems import _Problems
from sensor_manager.config.redaction import REDACTED, is_secret_key, redact
from sensor_manager.config.safe_yaml import _read_yaml
from sensor_manager.config.sources import (
    CONFIG_FILE_NAME,
    ENV_VARS,
    FLAG_NAMES,
    _apply_environment,
    _expand,
    _select_cities,
    _set,
    config_location,
    environment,
)

__all__ = [
    "CONFIG_FILE_NAME",
    "ENV_VARS",
    "KEY_VARIABLE",
    "MAX_FLEET_SENSORS",
    "REDACTED",
    "CityConfig",
    "Config",
    "ConfigError",
    "bundled_cities",
    "bundled_file",
    "config_location",
    "environment",
    "is_secret_key",
    "literal_key_replaced",
    "load_config",
    "map_seed_config",
    "read_seed_config",
    "redact",
    "section_yaml",
]


def _check_fleet_size(config: Config, origins: dict, label: str, problems: _Problems) -> None:
    """Every configured city is planned (codes are fleet-wide), so the bound is on all of them."""
    sensors = config.sensors_per_city * len(config.cities)
    if sensors <= MAX_FLEET_SENSORS:
        return
    where = origins.get(("sensors_per_city",), label)
    problems.add(
        where, "" if where.startswith("--") else "sensors_per_city",
        f"{config.sensors_per_city:,} sensors per city x {len(config.cities):,} cities = {sensors:,} sensors;"
        f" one machine runs at most {MAX_FLEET_SENSORS:,} (each hosted sensor takes ~210 KB of memory and four"
        " open files): lower sensors_per_city or configure fewer cities",
    )


def load_config(
    config_path: str | os.PathLike[str] | None = None,
    project_dir: str | os.PathLike[str] | None = None,
    overrides: dict[str, Any] | None = None,
    cosmos_config: str | os.PathLike[str] | None = None,
) -> Config:
    """Find, read, expand and validate the config; raise ConfigError listing every problem.

    `overrides` are dotted keys from CLI flags (e.g. {"sensors_per_city": 3}); they win over everything.
    The key `select_cities` ("A,B" or a list) picks a subset of the configured or bundled cities.
    `cosmos_config` (--cosmos-config) is the seed's Cosmos uploader config, mapped over the file and the
    environment (`cosmos_seed.py`); its keys with no equivalent end up in `Config.notes`.
    """
    env = environment(project_dir)
    path, _how = config_location(config_path, project_dir, env)
    label = str(path)
    problems = _Problems()
    raw = _read_yaml(path, label, problems)
    if raw is None:
        raise ConfigError(problems.lines)
    for internal in ("source_path", "selected_cities", "notes"):
        if internal in raw:
            problems.add(label, internal, f"unknown key {internal!r}")
            raw.pop(internal)
    origins: dict[tuple, str] = {}
    raw = _expand(raw, env, (), problems, label, origins)
    _apply_environment(raw, env, origins)
    seed = read_seed_config(cosmos_config) if cosmos_config is not None else None
    if seed is not None:
        apply_seed_overlay(raw, seed, env, problems, origins)
    overrides = dict(overrides or {})
    selection = None
    if "select_cities" in overrides:
        selection = _select_cities(raw, overrides.pop("select_cities"), problems)
    for dotted, value in overrides.items():
        key = tuple(dotted.split("."))
        flag = FLAG_NAMES.get(dotted, f"override {dotted}")
        if isinstance(value, float) and not math.isfinite(value):
            problems.add(flag, "", "NaN and infinity are not allowed")
            continue
        _set(raw, key, value)
        origins[key] = flag
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            problems.add(*_describe(error, origins, label))
        raise ConfigError(problems.lines) from None
    _check_fleet_size(config, origins, label, problems)
    if problems.lines:
        raise ConfigError(problems.lines)
    config.source_path = label
    config.selected_cities = selection
    config.notes = seed.notes if seed is not None else []
    return config
