"""What `set`, `reload`, `rollout` and `inject` do to the project's fleet, one function per command.

Each checks its input before anything changes, makes the change, and (on a running fleet) waits until
the services report it, returning what did not follow so the command can name it (exit 1).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetcore.errors import ConfigError, UsageError
from sensor_manager.layout import ProjectLayout
from sensor_manager.live import editing, injection, rollout
from sensor_manager.live.applied import Pending, wait_applied
from sensor_manager.live.reload import ReloadRecord, reload_config
from sensor_manager.simulator.live import Injection

DEFAULT_TIMEOUT_SECONDS = 10.0


@dataclass
class Applied:
    config: Path
    running: bool
    record: ReloadRecord | None = None
    pending: list[Pending] = field(default_factory=list)


def _runtime(layout: ProjectLayout):
    from sensor_manager.lifecycle import open_recorded

    return open_recorded(layout, None)[0]


def config_file(layout: ProjectLayout, config_path: Path | None) -> Path:
    """The project config file `reload` works on (never the bundled default)."""
    path, bundled = _located(layout, config_path)
    if bundled:
        from sensor_manager.config import CONFIG_FILE_NAME

        raise UsageError(f"no project config file to reload (the bundled default is in use); copy {path} to "
                         f"{layout.root / CONFIG_FILE_NAME} and edit that, or change keys with `set`")
    return path


def _located(layout: ProjectLayout, config_path: Path | None) -> tuple[Path, bool]:
    from sensor_manager.config import config_location, environment

    path, how = config_location(config_path, layout.root, environment(layout.root))
    return path, how == "bundled default"


def set_keys(layout: ProjectLayout, config_path: Path | None, items: list[str],
             timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> Applied:
    """Write the keys into the project config file and wait until the running services apply them.

    With no project file yet (the bundled default in use), the file is created from the bundled default,
    comments included, so the change has a home and later edits to it are the user's."""
    from sensor_manager.config import CONFIG_FILE_NAME

    assignments = editing.parse_assignments(items)
    located, bundled = _located(layout, config_path)
    path = layout.root / CONFIG_FILE_NAME if bundled else located
    runtime = _runtime(layout)
    running = runtime.is_running()
    frozen = editing.restart_needed(assignments) if running else []
    if frozen:
        raise UsageError(f"{frozen[0]}: not reloadable, so `set` cannot change it while the fleet runs; edit {path}, "
                         "then `restart` (docs/live-changes.md lists the reloadable keys)")
    editing.write_edited(path, layout.root, assignments, start_from=located if bundled else None)
    if not running:
        return Applied(path, running=False)
    return _apply(layout, runtime, path, timeout_seconds)


def reload_now(layout: ProjectLayout, config_path: Path | None, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> Applied:
    path = config_file(layout, config_path)
    runtime = _runtime(layout)
    return _apply(layout, runtime, path, timeout_seconds)


def _apply(layout: ProjectLayout, runtime, path: Path, timeout_seconds: float) -> Applied:
    record = reload_config(layout, runtime.name, path)
    if record.rejected:
        raise ConfigError([f"{path}: change rejected, the fleet runs unchanged:", *(f"  {e}" for e in record.errors)])
    running = runtime.is_running()
    pending = wait_applied(layout, runtime, timeout_seconds) if running else []
    return Applied(path, running, record, pending)


@dataclass
class RolloutResult:
    record: dict[str, Any]
    running: set[str]  # sensors that run now (the others switch when they start)

    @property
    def not_switched(self) -> list[str]:
        return [s for s in rollout.pending_switches(self.record) if s in self.running]

    @property
    def waiting_for_start(self) -> list[str]:
        return [s for s in rollout.pending_switches(self.record) if s not in self.running]


def rollout_firmware(layout: ProjectLayout, version: str, *, cities: list[str] | None, percent: float,
                     sensor_ids: list[str] | None, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> RolloutResult:
    record = rollout.start_rollout(layout, version, cities=cities, percent=percent, sensor_ids=sensor_ids)
    return _follow(layout, record, timeout_seconds)


def rollout_undo(layout: ProjectLayout, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> RolloutResult:
    return _follow(layout, rollout.undo_rollout(layout), timeout_seconds)


def _follow(layout: ProjectLayout, record: dict[str, Any], timeout_seconds: float) -> RolloutResult:
    runtime = _runtime(layout)
    running = {sid for s in runtime.status() if s.role == "sensor" and s.state == "running" for sid in s.sensors}
    return RolloutResult(rollout.wait_switched(layout, runtime, record["id"], timeout_seconds), running)


def rollout_status(layout: ProjectLayout) -> list[dict[str, Any]]:
    """Every rollout in the plan, with the switches the simulators reported so far recorded."""
    return list(rollout.record_switches(layout, _runtime(layout)).rollouts)


@dataclass
class InjectionResult:
    injection: Injection
    pending: list[str]  # running simulators that did not report it in time


def inject_anomaly(layout: ProjectLayout, *, kind: str, duration_seconds: float, sensor_ids: list[str] | None,
                   cities: list[str] | None, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> InjectionResult:
    runtime = _runtime(layout)
    request = injection.request_injection(layout, runtime.name, kind=kind, duration_seconds=duration_seconds,
                                          sensor_ids=sensor_ids, cities=cities)
    return InjectionResult(request, injection.wait_injected(runtime, request, timeout_seconds))
