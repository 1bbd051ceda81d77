"""Choosing the runtime and remembering it: `auto` | `docker` | `local` | `swarm`, recorded in state/runtime.json.

`start` records the runtime it used; every later command uses the recorded one. Asking for a different
runtime explicitly (`--runtime`) while the recorded one still runs is a `RuntimeConflictError` (exit 2).
`auto` picks docker when an engine answers and Compose v2 is present, else local, and says why.
`swarm` is only ever chosen explicitly. The docker and swarm runtimes are imported only when chosen.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ValidationError

from fleetcore.atomicfiles import write_atomic
from fleetcore.errors import EngineUnavailableError, RuntimeConflictError, UsageError
from fleetcore.statusfiles import utc_now_iso
from sensor_manager.layout import ProjectLayout
from sensor_manager.runtimes.image import ImageOptions

if TYPE_CHECKING:
    from sensor_manager.config import Config
    from sensor_manager.runtimes.base import Runtime

log = logging.getLogger(__name__)
RUNTIME_SCHEMA_VERSION = 1
RUNTIME_NAMES = ("auto", "docker", "local", "swarm")


@dataclass(frozen=True)
class RuntimeChoice:
    name: str  # "local" | "docker"
    reason: str  # one line: why this runtime
    recorded: bool  # taken from state/runtime.json


class RuntimeRecord(BaseModel):
    """state/runtime.json. A missing `schema_version` reads as 1; unknown keys are ignored."""

    schema_version: int = RUNTIME_SCHEMA_VERSION
    runtime: Literal["local", "docker", "swarm"]
    started_at: str | None = None
    reason: str = ""


def read_runtime_record(layout: ProjectLayout) -> RuntimeRecord | None:
    try:
        return RuntimeRecord.model_validate_json(layout.runtime_file.read_bytes())
    except (OSError, ValidationError):
        return None


def recorded_runtime(layout: ProjectLayout) -> str | None:
    """The runtime `start` recorded for this project, or None."""
    record = read_runtime_record(layout)
    return record.runtime if record else None


def record_runtime(layout: ProjectLayout, name: str, reason: str = "") -> None:
    """Write state/runtime.json atomically."""
    record = RuntimeRecord.model_validate({"runtime": name, "started_at": utc_now_iso(), "reason": reason})
    write_atomic(layout.runtime_file, json.dumps(record.model_dump(), indent=2) + "\n")


def detect_runtime() -> RuntimeChoice:
    """What `auto` means on this machine."""
    try:
        from sensor_manager.runtimes.engine import engine_available
    except ImportError:
        return RuntimeChoice("local", "auto: the docker runtime is not installed; using local processes", False)
    ok, why = engine_available()
    if ok:
        return RuntimeChoice("docker", f"auto: {why} found; using Docker", False)
    brief = why.split(";")[0].split(" (")[0]  # the condition, without the engine's own detail
    return RuntimeChoice("local", f"auto: {brief}; using local processes", False)


def choose_runtime(layout: ProjectLayout, config: "Config | None", requested: str | None, *, starting: bool = False) -> RuntimeChoice:
    """The runtime a command uses: the recorded one, else `--runtime`, else the config's `runtime`."""
    choice = _choose_runtime(layout, config, requested, starting=starting)
    log.debug("runtime: %s (%s)", choice.name, choice.reason)
    return choice


def _choose_runtime(layout: ProjectLayout, config: "Config | None", requested: str | None, *, starting: bool) -> RuntimeChoice:
    """The choice itself.

    An explicit `requested` that differs from the recorded runtime raises RuntimeConflictError, unless
    `starting` and the recorded runtime no longer runs anything (then the new choice replaces it).
    """
    if requested is not None and requested not in RUNTIME_NAMES:
        raise UsageError(f"--runtime {requested!r}: choose one of {', '.join(RUNTIME_NAMES)}")
    recorded = recorded_runtime(layout)
    explicit = requested if requested not in (None, "auto") else None
    if recorded and explicit and explicit != recorded:
        if not (starting and not runtime_for(recorded, layout).is_running()):
            raise RuntimeConflictError(
                f"this project runs on the {recorded} runtime ({layout.runtime_file}); "
                f"--runtime {explicit} conflicts: stop it first, then start with --runtime {explicit}"
            )
        return RuntimeChoice(explicit, f"--runtime {explicit} (replaces the stopped {recorded} runtime)", False)
    if recorded and not explicit:
        return RuntimeChoice(recorded, f"recorded in {layout.runtime_file}", True)
    wanted = explicit or (config.runtime if config is not None and requested is None else "auto")
    if wanted == "auto":
        return detect_runtime()
    source = "--runtime" if explicit else "config runtime"
    return RuntimeChoice(wanted, f"{source}: {wanted}", False)


@dataclass(frozen=True)
class DockerStartOptions:
    """What `start` may say about the docker runtime's image and project (the seed's flags map here)."""

    project_name: str | None = None  # -p/--project-name; later commands reuse the recorded one
    image: ImageOptions = ImageOptions()


def runtime_for(name: str, layout: ProjectLayout, docker_options: "DockerStartOptions | None" = None) -> "Runtime":
    """The Runtime object of `name` for this project (docker is imported only here)."""
    if name == "local":
        from sensor_manager.runtimes.local import LocalRuntime

        return LocalRuntime(layout)
    try:
        from sensor_manager.runtimes.compose import ComposeRuntime
    except ImportError as exc:
        raise EngineUnavailableError(f"the docker runtime is not available in this installation ({exc}); use --runtime local") from None
    options = docker_options or DockerStartOptions()
    if name == "swarm":
        from sensor_manager.runtimes.swarm import SwarmRuntime

        return SwarmRuntime(layout, project_name=options.project_name, image=options.image)
    return ComposeRuntime(layout, project_name=options.project_name, image=options.image)
