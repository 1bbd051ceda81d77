"""Live changes a running simulator picks up from its live directory, polled every `POLL_SECONDS`.

The runtime passes `--live-dir` (the local runtime: `state/`; a container: its read-only role config
directory, mounted as `/project/state`). Three files there, each replaced atomically by its writer:

- `simulator-settings.json`: the reloadable sections (`settings_document`). A changed file is
  validated and applied to every hosted sensor at once, or refused whole (`rejected_settings`);
  keys that need a restart must stay as they are.
- `injections.json`: anomaly episodes to start now (`inject anomaly`), each applied once by id.
- `plan.json`: the stored plan; a hosted sensor whose identity changed there (`rollout`) writes its
  next reading with the new identity, and reports from which seq.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from fleetcore.livesettings import settings_digest
from sensor_manager.simulator.settings import (
    ANOMALY_TYPES,
    AnomalySettings,
    DeviceSettings,
    FaultSettings,
    NormalParameters,
    SimulationSettings,
)

log = logging.getLogger(__name__)

SETTINGS_FILE = "simulator-settings.json"
INJECTIONS_FILE = "injections.json"
PLAN_FILE = "plan.json"
POLL_SECONDS = 0.5
SETTINGS_SECTIONS = ("simulation", "normal_parameters", "anomalies", "devices", "faults")
# `inject anomaly --type` names; `missing` is the `missing_data` anomaly.
INJECTABLE_TYPES = {"spike": "spike", "trend": "trend", "pattern": "pattern", "missing": "missing_data", "noise": "noise"}


def settings_document(config) -> dict[str, Any]:
    """What a simulator's settings file holds: the sections it reads (device tables only as modifiers)."""
    document = {
        "simulation": config.simulation.model_dump(mode="json"),
        "normal_parameters": config.normal_parameters.model_dump(mode="json"),
        "anomalies": config.anomalies.model_dump(mode="json"),
        "devices": {"modifiers": config.devices.model_dump(mode="json")["modifiers"]},
    }
    faults = getattr(config, "faults", None)
    if faults is not None:
        document["faults"] = faults.model_dump(mode="json")
    return document


def settings_bytes(config) -> bytes:
    return (json.dumps(settings_document(config), indent=2, sort_keys=True) + "\n").encode()


def leaf_values(document: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value for every leaf (lists are leaves)."""
    if not isinstance(document, dict):
        return {prefix: document}
    leaves: dict[str, Any] = {}
    for key, value in document.items():
        leaves.update(leaf_values(value, f"{prefix}.{key}" if prefix else str(key)))
    return leaves


def restart_keys(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Keys whose value differs between two documents and that a running service cannot apply."""
    from sensor_manager.config_reference import is_reloadable

    old, new = leaf_values(before), leaf_values(after)
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    return [key for key in changed if not is_reloadable(key)]


@dataclass(frozen=True)
class LiveSettings:
    """A validated settings file: the models the runner uses, and the document they came from."""

    simulation: SimulationSettings
    normal_parameters: NormalParameters
    anomalies: AnomalySettings
    modifiers: dict
    faults: FaultSettings
    document: dict[str, Any]

    def merged_devices(self, devices: DeviceSettings) -> DeviceSettings:
        return devices.model_copy(update={"modifiers": self.modifiers})


def parse_settings(data: bytes) -> LiveSettings:
    """Validate a settings file; ValueError lists every problem (`<key>: <problem>`)."""
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ValueError("the settings file holds a JSON object")
    unknown = sorted(set(document) - set(SETTINGS_SECTIONS))
    problems = [f"{key}: unknown section" for key in unknown]
    models: dict[str, type[BaseModel]] = {"simulation": SimulationSettings, "normal_parameters": NormalParameters,
                                          "anomalies": AnomalySettings, "faults": FaultSettings}
    parsed: dict[str, Any] = {}
    for name, model in models.items():
        try:
            parsed[name] = model.model_validate(document.get(name, {}))
        except ValidationError as exc:
            problems += [f"{name}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    try:
        devices = DeviceSettings.model_validate(document.get("devices", {}))
    except ValidationError as exc:
        problems += [f"devices.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        devices = None
    if problems:
        raise ValueError("; ".join(problems))
    assert devices is not None
    return LiveSettings(modifiers=devices.modifiers, document=document, **parsed)


@dataclass(frozen=True)
class Injection:
    """An anomaly episode to start now on the named sensors (`inject anomaly`)."""

    id: str
    sensor_ids: tuple[str, ...]
    type: str  # an ANOMALY_TYPES name
    duration_seconds: float
    requested_at_epoch: float

    @property
    def is_over(self) -> bool:
        return time.time() > self.requested_at_epoch + self.duration_seconds


def parse_injections(data: bytes) -> list[Injection]:
    """The requests in `injections.json`; malformed entries are skipped (the CLI validated them)."""
    try:
        entries = json.loads(data).get("injections", [])
    except (ValueError, AttributeError):
        return []
    found = []
    for entry in entries if isinstance(entries, list) else []:
        try:
            injection = Injection(str(entry["id"]), tuple(entry["sensor_ids"]), str(entry["type"]),
                                  float(entry["duration_seconds"]), float(entry["requested_at_epoch"]))
        except (KeyError, TypeError, ValueError):
            continue
        if injection.type in ANOMALY_TYPES:
            found.append(injection)
    return found


class PolledFile:
    """A file re-read only when its stat (inode, size, mtime) changed; atomic replacements always change the inode."""

    def __init__(self, path: Path):
        self.path = path
        self._stamp: tuple | None = None

    def changed(self) -> bytes | None:
        """The file's bytes when it changed since the last call (or appeared), else None."""
        try:
            stat = os.stat(self.path)
        except OSError:
            self._stamp = None
            return None
        stamp = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if stamp == self._stamp:
            return None
        try:
            data = self.path.read_bytes()
        except OSError:
            return None
        self._stamp = stamp
        return data


@dataclass
class SettingsChange:
    digest: str
    settings: LiveSettings | None  # None: rejected
    errors: list[str]


class LiveDirectory:
    """The polling side of live changes; the runner asks `poll` and applies what it returns."""

    def __init__(self, directory: Path):
        self.settings_file = PolledFile(directory / SETTINGS_FILE)
        self.injections_file = PolledFile(directory / INJECTIONS_FILE)
        self.plan_file = PolledFile(directory / PLAN_FILE)
        self.next_poll = 0.0
        self.seen_injections: set[str] = set()
        self.settings_digest: str | None = None

    def due(self, now: float) -> bool:
        return now >= self.next_poll

    def poll_settings(self, current: dict[str, Any] | None) -> SettingsChange | None:
        """A changed settings file, validated against the running document `current` (None: first read)."""
        data = self.settings_file.changed()
        if data is None:
            return None
        digest = settings_digest(data)
        if digest == self.settings_digest:
            return None
        self.settings_digest = digest
        try:
            settings = parse_settings(data)
        except ValueError as exc:
            return SettingsChange(digest, None, str(exc).split("; "))
        if current is not None:
            frozen = restart_keys(current, settings.document)
            if frozen:
                return SettingsChange(digest, None, [f"needs restart: {key}" for key in frozen])
        return SettingsChange(digest, settings, [])

    def poll_injections(self) -> list[Injection]:
        """Requests not applied before and not over yet."""
        data = self.injections_file.changed()
        if data is None:
            return []
        fresh = [i for i in parse_injections(data) if i.id not in self.seen_injections and not i.is_over]
        self.seen_injections.update(i.id for i in fresh)
        return fresh

    def poll_plan(self) -> dict[str, Any] | None:
        """sensor_id -> planned sensor (as stored) when the plan file changed."""
        data = self.plan_file.changed()
        if data is None:
            return None
        try:
            document = json.loads(data)
            return {s["sensor_id"]: s for s in document["sensors"]}
        except (ValueError, KeyError, TypeError):
            log.warning("Stored plan unreadable; identities unchanged. path=%s", self.plan_file.path)
            return None
