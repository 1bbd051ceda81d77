"""What containers read from the host: the per-role config directories under `state/compose/config/`.

Kept apart from the compose render (compose_render.py) because the hot reload (live/settings.py) writes
these files too, and the render's imports reach the local supervisor, which runs that reload.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from sensor_manager.layout import ProjectLayout
from sensor_manager.plan import FleetPlan

CONFIG_FILE = "sensor-manager.yaml"


def role_config_dir(layout: ProjectLayout, role: str) -> Path:
    return layout.state / "compose" / "config" / role


def role_config(config, role: str, plan: FleetPlan | None = None) -> dict[str, Any]:
    """The config a container of `role` sees: the resolved config without secrets (and, for sensors, without the uploader).

    With a plan, only the plan's cities are listed (and no max_cities), so the plan a container
    resolves from this config is exactly the stored one.
    """
    document = config.model_dump(mode="json")
    if role == "sensor":
        document.pop("uploader", None)
    if plan is not None:
        from fleetcore.naming import safe_city_name

        planned = set(plan.cities or (s.safe_city for s in plan.sensors))
        document["cities"] = [c for c in document.get("cities", []) if safe_city_name(c["name"]) in planned]
        document["max_cities"] = None
    return _without_secrets(document)


def _without_secrets(value: Any) -> Any:
    from sensor_manager import config as config_module

    is_secret = getattr(config_module, "is_secret_key", lambda name: name.lower() in {"key", "password", "secret"})
    if isinstance(value, dict):
        return {k: (None if is_secret(str(k)) else _without_secrets(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_secrets(v) for v in value]
    return value
