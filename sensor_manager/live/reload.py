"""Hot reload: validate the config file and rewrite each role's settings file, or record why not.

Valid and only reloadable keys changed (`config_reference.RELOADABLE`): the changed settings files are
replaced atomically and the services apply them within 2 s. Invalid, or a key that needs a restart
changed: nothing is rewritten, the services keep running as they are, and the rejection (errors,
time) is recorded in `state/config-reload.json`, which `status` and `diagnostics` show.
Keys no running service reads (cities, sensors_per_city, seed, the device tables) take effect at the
next `start` as before; they are not compared.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from fleetcore.atomicfiles import write_atomic
from fleetcore.errors import ConfigError
from fleetcore.livesettings import settings_digest
from fleetcore.statusfiles import read_json_object, utc_now_iso
from sensor_manager.layout import ProjectLayout
from sensor_manager.live.settings import SettingsFile, parse, render_settings
from sensor_manager.simulator.live import restart_keys

RECORD_FILE = "config-reload.json"


class ReloadRecord(BaseModel):
    """state/config-reload.json: the last reload of the config file and its outcome."""

    schema_version: int = 1
    config: str
    digest: str  # of the config file's bytes
    outcome: Literal["applied", "unchanged", "rejected"]
    errors: list[str] = Field(default_factory=list)
    at: str
    written: list[str] = Field(default_factory=list)  # settings files replaced

    @property
    def rejected(self) -> bool:
        return self.outcome == "rejected"

    @classmethod
    def read(cls, path: Path) -> "ReloadRecord | None":
        try:
            document = read_json_object(path)
            return cls.model_validate(document) if document else None
        except ValueError:
            return None


def record_path(layout: ProjectLayout) -> Path:
    return layout.state / RECORD_FILE


def read_record(layout: ProjectLayout) -> ReloadRecord | None:
    return ReloadRecord.read(record_path(layout))


def file_digest(path: Path) -> str | None:
    try:
        return settings_digest(path.read_bytes())
    except OSError:
        return None


def reload_config(layout: ProjectLayout, runtime: str, config_path: str | Path) -> ReloadRecord:
    """Apply the config file at `config_path` to the running fleet's settings files (see the module doc)."""
    from sensor_manager.config import load_config
    from sensor_manager.plan import load_plan

    path = Path(config_path)
    digest = file_digest(path) or "missing"
    try:
        config = load_config(path, layout.root)
    except ConfigError as exc:
        return _record(layout, path, digest, "rejected", exc.problems)
    files = render_settings(layout, runtime, config, load_plan(layout))
    frozen = sorted({key for f in files for key in _restart_keys(f)})
    if frozen:
        return _record(layout, path, digest, "rejected",
                       [f"needs restart: {key} (edit it, then `restart`; nothing was applied)" for key in frozen])
    changed = [f for f in files if _current(f.path) != f.data]
    for settings in changed:
        write_atomic(settings.path, settings.data, settings.mode)
    return _record(layout, path, digest, "applied" if changed else "unchanged", [], [str(f.path) for f in changed])


def _current(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _restart_keys(settings: SettingsFile) -> list[str]:
    current = _current(settings.path)
    if current is None:  # never rendered (e.g. that role is not started yet): nothing runs with it
        return []
    try:
        before = parse(settings.path, current)
    except ValueError:
        return []
    return restart_keys(before, settings.parsed())


def _record(layout: ProjectLayout, path: Path, digest: str, outcome, errors: list[str],
            written: list[str] | None = None) -> ReloadRecord:
    record = ReloadRecord(config=str(path), digest=digest, outcome=outcome, errors=errors, at=utc_now_iso(),
                          written=written or [])
    write_atomic(record_path(layout), record.model_dump_json(indent=2) + "\n")
    return record


def describe(record: ReloadRecord) -> str:
    """One line for `status` and `diagnostics`."""
    if record.rejected:
        return f"config change rejected at {record.at}, the fleet runs unchanged: {'; '.join(record.errors)}"
    return f"last config change applied at {record.at} ({record.config})"
