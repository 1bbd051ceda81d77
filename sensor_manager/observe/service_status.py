"""`status`: every planned service of the project with its state and health, from the recorded runtime.

Works on a stopped project (every service `stopped`) and on a project never started (no services).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sensor_manager.layout import ProjectLayout
from sensor_manager.lifecycle import open_recorded
from sensor_manager.live.reload import ReloadRecord, describe, read_record
from sensor_manager.plan import load_plan
from sensor_manager.runtimes.base import RuntimeFault, ServiceStatus

STATUS_SCHEMA_VERSION = 1
COLUMNS = ("SERVICE", "ROLE", "CITY", "SENSORS", "STATE", "HEALTH", "RESTARTS", "PID", "STARTED")


@dataclass
class StatusReport:
    project: str | None
    runtime: str
    services: list[ServiceStatus]
    fault: RuntimeFault | None = None  # e.g. the local supervisor died: services that should run are down
    reload: ReloadRecord | None = None  # the last hot reload of the config file (live/reload.py)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": STATUS_SCHEMA_VERSION,
            "project": self.project,
            "runtime": self.runtime,
            "fault": str(self.fault) if self.fault else None,
            "config_reload": self.reload.model_dump(mode="json") if self.reload else None,
            "services": [s.to_dict() for s in self.services],
        }

    def rows(self) -> list[tuple[str, ...]]:
        return [
            (s.name, s.role, s.city, str(len(s.sensors)) if s.role == "sensor" else "-", s.state, s.health,
             str(s.restarts), str(s.pid or "-"), (s.started_at or "-")[:19].replace("T", " "))
            for s in self.services
        ]

    @property
    def summary(self) -> str:
        running = sum(s.pid is not None for s in self.services)  # a crashloop or restarting service has no process
        healthy = sum(s.health == "healthy" for s in self.services)
        line = f"{running}/{len(self.services)} services running, {healthy} healthy ({self.runtime} runtime)"
        line += f"\nfault: {self.fault}" if self.fault else ""
        return line + (f"\nconfig: {describe(self.reload)}" if self.reload and self.reload.rejected else "")


def collect_status(layout: ProjectLayout, runtime_name: str | None = None) -> StatusReport:
    """Status of every planned service as the project's recorded runtime sees it."""
    runtime, choice = open_recorded(layout, runtime_name)
    plan = load_plan(layout)
    return StatusReport(plan.project if plan else None, choice.name, runtime.status(), runtime.fault(), read_record(layout))
