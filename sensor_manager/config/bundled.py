"""The files shipped in `config/`: the default config and the city table (package data when installed)."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from sensor_manager.layout import REPO_ROOT

REPO_CONFIG_DIR = REPO_ROOT / "config"
DEFAULT_CITIES = ("Amsterdam", "Berlin", "London", "New York", "Tokyo")


def bundled_file(name: str) -> Path:
    """A file shipped in config/: package data `sensor_manager.config_data` when installed, else the checkout's."""
    try:
        from importlib.resources import files

        candidate = files("sensor_manager.config_data") / name
        if isinstance(candidate, Path) and candidate.is_file():
            return candidate
    except ModuleNotFoundError:
        pass
    return REPO_CONFIG_DIR / name


@functools.cache
def bundled_cities() -> dict[str, dict[str, Any]]:
    """The bundled city table, keyed by case-folded display name, in table order."""
    data = yaml.safe_load(bundled_file("cities.yaml").read_text(encoding="utf-8"))
    return {entry["name"].casefold(): entry for entry in data["cities"]}
