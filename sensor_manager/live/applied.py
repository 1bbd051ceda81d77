"""Waiting until every running service reports the settings file it should run with (by digest)."""
from __future__ import annotations

import time
from dataclasses import dataclass

from sensor_manager.layout import ProjectLayout
from sensor_manager.live.reload import file_digest
from sensor_manager.live.settings import settings_path

POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Pending:
    service: str
    reason: str

    def __str__(self) -> str:
        return f"{self.service} ({self.reason})"


def pending_services(layout: ProjectLayout, runtime) -> list[Pending]:
    """Running services whose status does not report their role's current settings digest yet."""
    wanted = {role: file_digest(settings_path(layout, runtime.name, role)) for role in ("sensor", "uploader")}
    pending = []
    for service in runtime.status():
        if service.state != "running" or wanted.get(service.role) is None:
            continue
        status = service.detail.get("status")
        applied = getattr(status, "applied_settings", None)
        rejected = getattr(status, "rejected_settings", None)
        if applied is not None and applied.digest == wanted[service.role]:
            continue
        if rejected is not None and rejected.digest == wanted[service.role]:
            pending.append(Pending(service.name, "rejected: " + "; ".join(rejected.errors)))
        elif status is None:
            pending.append(Pending(service.name, "no status file"))
        else:
            shown = applied.digest if applied is not None else "none reported"
            pending.append(Pending(service.name, f"runs settings {shown}, not {wanted[service.role]}"))
    return pending


def wait_applied(layout: ProjectLayout, runtime, timeout_seconds: float) -> list[Pending]:
    """Poll until no running service is pending (returns []) or the timeout passes (returns those left)."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        pending = pending_services(layout, runtime)
        rejected = [p for p in pending if p.reason.startswith("rejected")]
        if not pending or rejected or time.monotonic() >= deadline:
            return pending
        time.sleep(POLL_SECONDS)
