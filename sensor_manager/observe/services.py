"""The project's services as its recorded runtime sees them, for the monitor and diagnostics.

A project never started has no recorded runtime and so no services; an engine that stopped answering
gives none either (diagnostics reports the engine itself), and the callers fall back to status files.
"""
from __future__ import annotations

from fleetcore.errors import EngineUnavailableError
from sensor_manager.layout import ProjectLayout
from sensor_manager.runtimes import recorded_runtime, runtime_for
from sensor_manager.runtimes.base import RuntimeFault, ServiceStatus


def service_statuses(layout: ProjectLayout) -> list[ServiceStatus]:
    name = recorded_runtime(layout)
    if name is None:
        return []
    try:
        return runtime_for(name, layout).status()
    except EngineUnavailableError:
        return []


def runtime_fault(layout: ProjectLayout) -> RuntimeFault | None:
    """Why services that should run are not supervised (the recorded runtime's `fault`)."""
    name = recorded_runtime(layout)
    try:
        return runtime_for(name, layout).fault() if name else None
    except EngineUnavailableError:
        return None
