"""The settings file each role polls, per runtime, and what a config resolves to in it.

Local runtime: `state/simulator-settings.json` and `state/uploader-settings.json` (owner-only: it may
hold a sink key). Docker: the role config directories under `state/compose/config/` that containers
mount read-only (`sensor/simulator-settings.json`, `uploader/sensor-manager.yaml`); a directory
mount, so a file replaced by rename is seen inside the container.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sensor_manager.layout import ProjectLayout
from sensor_manager.simulator.live import SETTINGS_FILE, settings_bytes

ROLES = ("sensor", "uploader")


@dataclass(frozen=True)
class SettingsFile:
    role: str
    path: Path
    data: bytes
    mode: int

    def parsed(self) -> dict[str, Any]:
        return parse(self.path, self.data)


def parse(path: Path, data: bytes) -> dict[str, Any]:
    document = yaml.safe_load(data) if path.suffix == ".yaml" else json.loads(data)
    return document if isinstance(document, dict) else {}


def uploader_settings_path(layout: ProjectLayout) -> Path:
    return layout.state / "uploader-settings.json"


def uploader_settings_document(config) -> dict[str, Any]:
    """What a local uploader reads (`--config`): the project name and the resolved `uploader:` section."""
    return {"project": config.project, "uploader": config.uploader.model_dump(mode="json")}


def settings_path(layout: ProjectLayout, runtime: str, role: str) -> Path:
    if runtime == "docker":
        from sensor_manager.runtimes.compose_files import CONFIG_FILE, role_config_dir

        return role_config_dir(layout, role) / (SETTINGS_FILE if role == "sensor" else CONFIG_FILE)
    return layout.state / SETTINGS_FILE if role == "sensor" else uploader_settings_path(layout)


def render_settings(layout: ProjectLayout, runtime: str, config, plan) -> list[SettingsFile]:
    """Each role's settings file as `config` resolves it (the same bytes `start` writes)."""
    if runtime == "docker":
        from sensor_manager.runtimes.compose_files import role_config

        uploader = yaml.safe_dump(role_config(config, "uploader", plan), sort_keys=False, allow_unicode=True).encode()
        mode = 0o644  # read by the container user
    else:
        uploader = (json.dumps(uploader_settings_document(config), indent=2) + "\n").encode()
        mode = 0o600
    return [SettingsFile("sensor", settings_path(layout, runtime, "sensor"), settings_bytes(config), 0o644),
            SettingsFile("uploader", settings_path(layout, runtime, "uploader"), uploader, mode)]


def live_dir(layout: ProjectLayout, runtime: str) -> Path:
    """Where running simulators poll for live changes (their `--live-dir` on the host)."""
    return settings_path(layout, runtime, "sensor").parent

