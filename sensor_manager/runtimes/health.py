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
from typing import Any

from fleetcore.statusfiles import is_stale

STARTUP_GRACE_SECONDS = 60.0


def sensor_ready(document: dict[str, Any], sensor_ids: list[str]) -> bool:
    sensors = document.get("sensors") or {}
    return all((sensors.get(sid) or {}).get("rows_written", 0) > 0 for sid in sensor_ids)


def uploader_ready(document: dict[str, Any]) -> bool | None:
    """True when running or idle, False when failing or stopped, None while starting."""
    state = document.get("state")
    if state in ("running", "idle"):
        return True
    if state in ("failing", "stopped"):
        return False
    return None


def service_health(
    role: str,
    document: dict[str, Any] | None,
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
    if document is None or document.get("pid") != pid:
        return "starting" if young else "unhealthy"
    if is_stale(document, now):
        return "hung"
    ready = sensor_ready(document, sensor_ids) if role == "sensor" else uploader_ready(document)
    if ready:
        return "healthy"
    if ready is False and role == "uploader":
        return "unhealthy"
    return "starting" if young else "unhealthy"
