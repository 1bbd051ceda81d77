"""Start, stop, restart, reset and cleanup of a project, the same for every runtime.

Each verb picks the runtime (runtimes/__init__.py), works out the plan and the services its targets
name, and drives the runtime through the `Runtime` protocol only. Nothing changes on disk before
preflight passes; `start` never deletes data; `reset` wipes only what this project wrote (files it
knows by name in each planned sensor's folder, the project's lake table, archive, checkpoints; in a
sink outside the project, only this project's rows of the old epoch),
so foreign files in the data directory survive. A lock (`state/locks/lifecycle.lock`) serialises
lifecycle commands of one project.
"""
from __future__ import annotations

import fcntl
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from fleetcore.errors import UsageError
from sensor_manager.config import Config
from sensor_manager.layout import ProjectLayout
from sensor_manager.plan import FleetPlan, bump_epoch, bump_ship_generation, fleet_plan, load_plan, resolve_plan
from sensor_manager.preflight import Check, require_preflight
from sensor_manager.runtimes import DockerStartOptions, RuntimeChoice, choose_runtime, record_runtime, runtime_for
from sensor_manager.runtimes.base import Runtime, Service
from sensor_manager.runtimes.targets import resolve_targets
from uploader.sinks import SINKS
from uploader.sinks.base import SinkContext

DEFAULT_WAIT_TIMEOUT = 120.0
# What a sensor writes into its own folder; anything else there is foreign and is left alone.
SENSOR_FILE_PATTERNS = ("sensor_data.db", "sensor_data.db-*", "sensor_data.db.*", "identity.json", "seq.hwm", "status.json")


@contextmanager
def project_lock(layout: ProjectLayout) -> Iterator[None]:
    """Serialise lifecycle commands of one project (blocks while another holds it)."""
    layout.locks.mkdir(parents=True, exist_ok=True)
    fd = os.open(layout.locks / "lifecycle.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def runtime_services(runtime: Runtime, plan: FleetPlan) -> list[Service]:
    """The services `runtime` runs for `plan` (a runtime may host several sensors per service)."""
    return runtime.services(plan)


@dataclass
class StartResult:
    runtime: str
    reason: str
    plan: FleetPlan
    services: list[str]  # the services this start is about
    started: list[str] = field(default_factory=list)  # of those, the ones that were not running
    unhealthy: list[str] = field(default_factory=list)  # after --wait: those that did not become healthy
    checks: list[Check] = field(default_factory=list)
    dry_run: bool = False
    config_differences: list[str] = field(default_factory=list)  # the stored plan ran instead of the config's

    @property
    def already_running(self) -> bool:
        return not self.started and not self.dry_run


def _not_running(runtime: Runtime, names: list[str]) -> list[str]:
    if not runtime.is_running():
        return list(names)
    states = {s.name: s.state for s in runtime.status()}
    return [n for n in names if states.get(n, "stopped") == "stopped"]


def start(
    layout: ProjectLayout,
    config: Config,
    *,
    runtime_name: str | None = None,
    targets: list[str] | None = None,
    dry_run: bool = False,
    wait: bool = False,
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
    docker_options: DockerStartOptions | None = None,
    replan: bool = False,
    keep_stored: bool = False,
) -> StartResult:
    """Preflight, persist the plan, render, start what is not running; with `wait`, wait for health."""
    choice = choose_runtime(layout, config, runtime_name, starting=True)
    checks = require_preflight(config, layout, choice.name, replan=replan, keep_stored=keep_stored)
    runtime = runtime_for(choice.name, layout, docker_options)
    if dry_run:
        plan, differences = fleet_plan(config, layout, persist=False, replan=replan, keep_stored=keep_stored)
        services = runtime_services(runtime, plan)
        names = resolve_targets(services, targets) or [s.name for s in services]
        return StartResult(choice.name, choice.reason, plan, names, _not_running(runtime, names), checks=checks,
                           dry_run=True, config_differences=differences)
    with project_lock(layout):
        plan, differences = fleet_plan(config, layout, persist=True, replan=replan, keep_stored=keep_stored)
        services = runtime_services(runtime, plan)
        names = resolve_targets(services, targets) or [s.name for s in services]
        result = StartResult(choice.name, choice.reason, plan, names, _not_running(runtime, names), checks=checks,
                             config_differences=differences)
        runtime.render(plan, config)
        if result.started:
            runtime.start(plan, config, names)
        if result.started or not choice.recorded:  # a fleet already running keeps its started_at
            record_runtime(layout, choice.name, choice.reason)
    if wait:
        result.unhealthy = runtime.wait_healthy(names, wait_timeout)
    return result


def open_recorded(layout: ProjectLayout, runtime_name: str | None) -> tuple[Runtime, RuntimeChoice]:
    """The runtime of a project for commands that do not start it (stop, status, logs …)."""
    choice = choose_runtime(layout, None, runtime_name)
    if not choice.recorded and runtime_name in (None, "auto"):
        choice = RuntimeChoice("local", "nothing recorded yet", False)
    return runtime_for(choice.name, layout), choice


def target_services(runtime: Runtime, layout: ProjectLayout, targets: list[str] | None) -> list[str] | None:
    """Service names for `targets` from the stored plan (None: all)."""
    if not targets:
        return None
    plan = load_plan(layout)
    if plan is None:
        raise UsageError(f"no plan yet ({layout.plan_file}); run `start` first")
    return resolve_targets(runtime_services(runtime, plan), targets)


@dataclass
class StopResult:
    runtime: str
    was_running: bool
    services: list[str] | None  # None: everything


def stop(layout: ProjectLayout, *, runtime_name: str | None = None, targets: list[str] | None = None) -> StopResult:
    """Stop gracefully (all, or the targeted services); data, ids and checkpoints are kept."""
    runtime, choice = open_recorded(layout, runtime_name)
    names = target_services(runtime, layout, targets)
    if not layout.state.exists():
        return StopResult(choice.name, False, names)
    with project_lock(layout):
        was_running = runtime.stop(names)
    return StopResult(choice.name, was_running, names)


@dataclass
class RestartResult:
    services: list[str]
    config_differences: list[str]  # the stored plan ran instead of the config's (see `fleet_plan`)


def restart(layout: ProjectLayout, config: Config, *, runtime_name: str | None = None, targets: list[str] | None = None,
            replan: bool = False) -> RestartResult:
    """Re-render (picking up config changes) and restart the targeted services of the stored plan."""
    choice = choose_runtime(layout, config, runtime_name, starting=True)
    require_preflight(config, layout, choice.name, replan=replan, keep_stored=True)
    runtime = runtime_for(choice.name, layout)
    with project_lock(layout):
        plan, differences = fleet_plan(config, layout, persist=True, replan=replan, keep_stored=True)
        services = runtime_services(runtime, plan)
        names = resolve_targets(services, targets) or [s.name for s in services]
        runtime.render(plan, config)
        if runtime.is_running():
            runtime.restart(names)
        else:
            runtime.start(plan, config, names)
        record_runtime(layout, choice.name, choice.reason)
    return RestartResult(names, differences)


def cleanup(layout: ProjectLayout, *, runtime_name: str | None = None, dry_run: bool = False) -> list[str]:
    """Remove this project's provable leftovers; return what was (or would be) removed."""
    runtime, _ = open_recorded(layout, runtime_name)
    if not layout.state.exists():
        return []
    found = runtime.cleanup(True)
    if dry_run or not found:
        return found
    with project_lock(layout):
        return runtime.cleanup(False)


# --- reset -----------------------------------------------------------------------------------------


@dataclass
class ResetPlan:
    paths: list[Path]  # files and folders that would be deleted
    sinks: dict[str, str]  # sink -> where: the old epoch's rows are deleted through the sink (outside the project)
    epoch: int  # the fleet_epoch after the reset
    old_epoch: int


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def sink_context(layout: ProjectLayout, config: Config) -> SinkContext:
    """Where each sink's readings are (clean and reset work on the readings, whatever stage a sink receives)."""
    return SinkContext(lake=layout.lake, project_dir=layout.root)


def _sensor_files(layout: ProjectLayout, plan: FleetPlan) -> list[Path]:
    found = []
    for sensor in (*plan.sensors, *plan.retired):
        folder = layout.root / sensor.sensor_dir
        for pattern in SENSOR_FILE_PATTERNS:
            found.extend(sorted(p for p in folder.glob(pattern) if p.is_file()))
    return list(dict.fromkeys(found))


def plan_reset(layout: ProjectLayout, config: Config) -> ResetPlan:
    """What `reset` would delete (nothing is changed): sink locations inside the project whole, the rest through the sink."""
    plan = load_plan(layout) or resolve_plan(config, layout, persist=False)
    paths = _sensor_files(layout, plan)
    through: dict[str, str] = {}
    context = sink_context(layout, config)
    for name, spec in SINKS.items():
        settings = config.uploader.sinks.named(name)
        owned = spec.project_path(settings, context)
        if owned is not None and _inside(owned, layout.root):
            if settings.enabled or owned.exists():
                paths.append(owned)
        elif settings.enabled:
            through[name] = spec.location(settings, context)
    for folder in (layout.checkpoints, layout.status_dir, layout.deadletter):
        paths.extend(sorted(folder.iterdir()) if folder.is_dir() else [])
    return ResetPlan([p for p in paths if p.exists()], through, plan.fleet_epoch + 1, plan.fleet_epoch)


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _prune_empty_dirs(layout: ProjectLayout, paths: list[Path]) -> None:
    """Remove folders that deleting `paths` left empty, up to (not including) the project's top folders."""
    tops = {layout.root, layout.data, layout.archive, layout.lake, layout.state}
    for folder in sorted({p.parent for p in paths}, key=lambda p: len(p.parts), reverse=True):
        while folder not in tops and _inside(folder, layout.root) and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent


def reset(
    layout: ProjectLayout,
    config: Config,
    *,
    runtime_name: str | None = None,
    wait: bool = False,
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
    replan: bool = False,
) -> tuple[ResetPlan, StartResult]:
    """Stop, wipe this project's data, sinks and checkpoints, bump fleet_epoch, start the stored plan.

    A sink outside the project directory (S3, a shared table) loses only this project's rows of the old epoch."""
    from uploader import maintenance

    choice = choose_runtime(layout, config, runtime_name, starting=True)
    require_preflight(config, layout, choice.name, replan=replan, keep_stored=True)
    with project_lock(layout):
        runtime_for(choice.name, layout).stop(None)
        doomed = plan_reset(layout, config)
        context = sink_context(layout, config)
        remote = [SINKS[name].build(config.uploader.sinks.named(name), context) for name in doomed.sinks]
        plan = load_plan(layout)
        maintenance.delete_project_rows(remote, plan.project if plan else config.project, doomed.old_epoch)
        for path in doomed.paths:
            _delete(path)
        _prune_empty_dirs(layout, doomed.paths)
        fleet_plan(config, layout, persist=True, replan=replan, keep_stored=True)
        bump_epoch(layout)
    result = start(layout, config, runtime_name=choice.name, wait=wait, wait_timeout=wait_timeout, replan=replan, keep_stored=True)
    return doomed, result


# --- clean -----------------------------------------------------------------------------------------


@dataclass
class CleanResult:
    project: str
    rows: dict[str, int]  # per sink: counted (dry run) or deleted
    locations: dict[str, str]  # per sink: where
    dry_run: bool
    reship: bool
    sources_moved: int = 0  # without --reship: sources whose position moved to their current end
    ship_generation: int | None = None  # with --reship: the project's new ship generation
    paused: list[str] = field(default_factory=list)  # uploaders stopped during the clean and started again


def clean(
    layout: ProjectLayout,
    config: Config,
    *,
    runtime_name: str | None = None,
    dry_run: bool = False,
    reship: bool = False,
) -> CleanResult:
    """Delete this project's rows from every enabled sink (each sink knows which are its), with the uploaders paused.

    Before the delete every source's position moves to its current end (in each sink and the checkpoints),
    so the uploaders do not ship the history again; with `reship` the plan moves to a new ship generation
    instead, and everything still in the edge DBs is shipped again to every sink.
    """
    from uploader import maintenance

    context = sink_context(layout, config)
    enabled = config.uploader.sinks.enabled()
    sinks = maintenance.project_sinks(config.uploader, context)
    plan = load_plan(layout)
    project = plan.project if plan else config.project
    locations = {name: SINKS[name].location(settings, context) for name, settings in enabled.items()}
    result = CleanResult(project, {}, locations, dry_run, reship)
    if dry_run:
        result.rows = maintenance.count_project_rows(sinks, project)
        return result
    runtime, _ = open_recorded(layout, runtime_name)
    with project_lock(layout):
        if plan is not None and runtime.is_running():
            uploaders = [s.name for s in runtime_services(runtime, plan) if s.role == "uploader"]
            states = {s.name: s.state for s in runtime.status()}
            result.paused = [name for name in uploaders if states.get(name, "stopped") != "stopped"]
            if result.paused:
                runtime.stop(result.paused)
        try:
            if reship:
                result.rows = maintenance.delete_project_rows(sinks, project)
                plan = bump_ship_generation(layout)
                result.ship_generation = plan.ship_generation
                runtime.render(plan, config)  # containers read the plan from their rendered config
            else:
                result.sources_moved = maintenance.mark_history_shipped(
                    layout.root, sinks, state_root=layout.state, project=project,
                    fleet_epoch=plan.fleet_epoch if plan else None)
                result.rows = maintenance.delete_project_rows(sinks, project)
        finally:
            if result.paused and plan is not None:  # paused only when there is a plan
                runtime.start(plan, config, result.paused)
    return result
