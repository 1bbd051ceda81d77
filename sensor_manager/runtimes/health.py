"""Health of a running service, judged from its status file (fleetcore/statusfiles.py), the same way for every runtime.

- sensor: healthy once its status file is fresh, written by the current process, and every sensor it
  hosts has written a reading;
- uploader: healthy once its status file is fresh, written by the current process, and its state is
  `running` or `idle` (`failing` is unhealthy).

Until then a service is `starting`, for at most `STARTUP_GRACE_SECONDS` after it started; after that
`unhealthy`. A service whose process wrote its status file and then let it go stale is `hung` (stopped,
deadlocked or stuck; the local supervisor restarts it after its health deadline). A service that does
not run has health `unknown`.
"""
from __future__ import annotations

import time
from pathlib import Path

from sensor_manager.simulator.status_file import SimulatorStatus
from uploader.status_file import UploaderStatus

STARTUP_GRACE_SECONDS = 60.0


def read_service_status(role: str, path: Path) -> SimulatorStatus | UploaderStatus | None:
    """The status file of a service of `role` (sensor or uploader), read with its model."""
    return (SimulatorStatus if role == "sensor" else UploaderStatus).read(path)


def sensor_ready(status: SimulatorStatus, sensor_ids: list[str]) -> bool:
    return all(sid in status.sensors and status.sensors[sid].rows_written > 0 for sid in sensor_ids)


def uploader_ready(status: UploaderStatus) -> bool | None:
    """True when running or idle, False when failing or stopped, None while starting."""
    state = status.state
    if state in ("running", "idle"):
        return True
    if state in ("failing", "stopped"):
        return False
    return None


def service_health(
    role: str,
    status: SimulatorStatus | UploaderStatus | None,
    sensor_ids: list[str],
    pid: int | None,
    started_epoch: float | None,
    now: float | None = None,
) -> str:
    """healthy | starting | unhealthy | hung | unknown for one service (`pid` None: not running)."""
    if pid is None:
        return "unknown"
    now = time.time() if now is None else now
    young = started_epoch is not None and now - started_epoch < STARTUP_GRACE_SECONDS
    if status is None or status.pid != pid:
        return "starting" if young else "unhealthy"
    if status.is_stale(now):
        return "hung"
    ready: bool | None  # None: an uploader still starting
    if isinstance(status, SimulatorStatus):
        ready = sensor_ready(status, sensor_ids)
    else:
        ready = uploader_ready(status)
    if ready:
        return "healthy"
    if ready is False and role == "uploader":
        return "unhealthy"
    return "starting" if young else "unhealthy"
