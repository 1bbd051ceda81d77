"""May the host open live edge DBs? The one decision `monitor`, `diagnostics` and `query` share.

Docker Desktop (macOS, Windows) runs containers in a VM and SQLite locks do not cross its file sharing,
so there the host must not open a DB a container is writing. Then:
- `monitor` takes rows, seq, last timestamp, rate and active anomaly from the simulators' status files
  (`data/<City>/<CODE>/status.json`) and lag from the uploaders' status files;
- `diagnostics` skips the per-DB checks (with how to run them inside a container);
- `query --source edge` runs inside each city's uploader container (`observe/container_query.py`).

`SENSOR_MANAGER_EDGE_READS` overrides the detection: `host` (always open DBs from the host),
`container` (never), `auto` or unset (container mode when the recorded runtime is swarm, whose nodes
the host may not see, or docker on an engine that says it is Docker Desktop; asked once per process).
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from fleetcore.errors import SensorManagerError, UsageError
from sensor_manager.layout import ProjectLayout
from sensor_manager.runtimes import recorded_runtime

ENV_VAR = "SENSOR_MANAGER_EDGE_READS"
MODES = ("auto", "host", "container")
ENGINE_TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class EdgeAccess:
    host: bool  # may the host open live edge DBs?
    reason: str  # one line: why

    @property
    def mode(self) -> str:
        return "host" if self.host else "container"


@functools.lru_cache(maxsize=1)
def _engine_is_docker_desktop() -> bool | None:
    """True/False as the engine reports it; None when no engine answers (one ask per process)."""
    try:
        from sensor_manager.runtimes.engine import docker_client, engine_info

        return engine_info(docker_client(timeout=ENGINE_TIMEOUT_SECONDS)).is_docker_desktop
    except (SensorManagerError, ImportError):
        return None
    except Exception:  # an engine that answers the ping but not `info`: treat as unknown
        return None


def edge_access(layout: ProjectLayout) -> EdgeAccess:
    """Whether host-side reads of the edge DBs are allowed here, and why."""
    wanted = (os.environ.get(ENV_VAR) or "auto").strip().lower()
    if wanted not in MODES:
        raise UsageError(f"{ENV_VAR}={os.environ.get(ENV_VAR)!r}: choose one of {', '.join(MODES)}")
    if wanted == "host":
        return EdgeAccess(True, f"{ENV_VAR}=host")
    if wanted == "container":
        return EdgeAccess(False, f"{ENV_VAR}=container")
    runtime = recorded_runtime(layout)
    if runtime == "swarm":
        return EdgeAccess(False, "the swarm runtime runs on nodes whose files the host may not see")
    if runtime != "docker":
        return EdgeAccess(True, f"the recorded runtime is {runtime or 'none'}")
    desktop = _engine_is_docker_desktop()
    if desktop is None:
        return EdgeAccess(True, "docker runtime, but no engine answers: reading the DBs from the host")
    if desktop:
        return EdgeAccess(False, "the docker runtime runs on Docker Desktop (SQLite locks do not cross its file sharing)")
    return EdgeAccess(True, "the docker runtime runs on a native engine")


def host_may_open_edge_dbs(layout: ProjectLayout) -> bool:
    return edge_access(layout).host
