"""The Runtime protocol: how a FleetPlan is rendered and driven (local processes, Docker Compose, later Bacalhau).

A runtime takes the plan and never invents ids, paths or seeds. Services are derived from the plan
by `plan_services`; the runtime decides only how many sensors one service hosts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Literal, Protocol

from fleetcore.naming import city_service_slug
from sensor_manager.config import Config
from sensor_manager.layout import ProjectLayout
from sensor_manager.plan import FleetPlan, PlannedSensor
from sensor_manager.runtimes.supervisor import ServiceState  # the state the supervisor records

Role = Literal["sensor", "uploader"]


@dataclass(frozen=True)
class Service:
    """One supervised unit: a process (local) or a container (docker)."""

    name: str  # sensor-<city-slug>[-<code>] | uploader-<city-slug>
    role: Role
    safe_city: str  # safe city name, e.g. "New_York"
    sensors: tuple[PlannedSensor, ...] = ()

    @property
    def sensor_ids(self) -> list[str]:
        return [s.sensor_id for s in self.sensors]


@dataclass
class ServiceStatus:
    """One row of `status --json` (`services[]`)."""

    name: str
    role: Role
    city: str
    sensors: list[str]
    state: ServiceState
    health: str  # healthy | unhealthy | starting | unknown
    restarts: int = 0
    pid: int | None = None
    started_at: str | None = None
    detail: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "role": self.role,
            "city": self.city,
            "sensors": self.sensors,
            "state": self.state,
            "health": self.health,
            "restarts": self.restarts,
            "pid": self.pid,
            "started_at": self.started_at,
        }


@dataclass(frozen=True)
class RuntimeFault:
    """Why services that should run are not supervised, and what to do."""

    problem: str
    remedy: str

    def __str__(self) -> str:
        return f"{self.problem}; {self.remedy}"


@dataclass(frozen=True)
class LogLine:
    service: str
    text: str
    timestamp: str | None = None  # ISO-8601 when known


def plan_services(plan: FleetPlan, sensors_per_service: int | None) -> list[Service]:
    """Sensor services (a whole city per service when `sensors_per_service` is None) then one uploader per city."""
    services: list[Service] = []
    for safe_city, sensors in plan.by_city().items():
        slug = city_service_slug(safe_city)
        if sensors_per_service is None:
            services.append(Service(f"sensor-{slug}", "sensor", safe_city, tuple(sensors)))
        elif sensors_per_service == 1:
            services.extend(Service(f"sensor-{slug}-{s.code.lower()}", "sensor", safe_city, (s,)) for s in sensors)
        else:
            for start in range(0, len(sensors), sensors_per_service):
                chunk = tuple(sensors[start : start + sensors_per_service])
                services.append(Service(f"sensor-{slug}-{start // sensors_per_service + 1}", "sensor", safe_city, chunk))
    for safe_city in plan.by_city():
        services.append(Service(f"uploader-{city_service_slug(safe_city)}", "uploader", safe_city))
    return services


class Runtime(Protocol):
    """What every runtime offers; the lifecycle commands call only these."""

    name: str  # "local" | "docker"
    layout: ProjectLayout

    def services(self, plan: FleetPlan) -> list[Service]:
        """The services this runtime runs for `plan` (it decides how many sensors one service hosts)."""

    def render(self, plan: FleetPlan, config: Config) -> list[str]:
        """Write what the runtime needs to run the plan (specs, compose file); return the paths written."""

    def start(self, plan: FleetPlan, config: Config, services: list[str] | None = None) -> None:
        """Start all services, or the named ones; a running service is left alone."""

    def wait_healthy(self, services: list[str] | None, timeout_seconds: float) -> list[str]:
        """Block until the services are healthy; return the names of those that are not at the timeout."""

    def stop(self, services: list[str] | None = None) -> bool:
        """Stop gracefully; return False when nothing was running."""

    def restart(self, services: list[str] | None = None) -> None: ...

    def status(self) -> list[ServiceStatus]:
        """Every planned service, running or not."""

    def logs(
        self,
        services: list[str] | None,
        follow: bool,
        tail: int | None,
        since: str | None,
    ) -> Iterator[LogLine]: ...

    def is_running(self) -> bool: ...

    def fault(self) -> RuntimeFault | None:
        """Why services that should run are not supervised (e.g. the local supervisor died); None: no fault."""

    def cleanup(self, dry_run: bool) -> list[str]:
        """Remove this project's leftovers only; return what was (or would be) removed."""
