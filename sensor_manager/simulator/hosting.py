"""What one `simulate` process hosts: which sensors, where their files live, its run options and status file.

Sensors come from the fleet plan: the stored plan's entries for `--sensor-id` ids it holds (what a
runtime's services pass), else `resolve_plan` (then `select_sensors`); or from one identity file
(`--identity`). Each sensor's folder is `<data-dir>/<City>/<CODE>/`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fleetcore.naming import city_service_slug
from sensor_manager.layout import ProjectLayout
from sensor_manager.simulator.identity import SensorIdentity, identity_dir_name, load_identity
from sensor_manager.simulator.runner import RunOptions, SensorSpec
from sensor_manager.simulator.status_file import is_healthy


@dataclass(frozen=True)
class HostingRequest:
    sensor_ids: tuple[str, ...] = ()
    data_dir: Path | None = None  # default: <project>/data
    status_file: Path | None = None  # default: state/status/<status name>.json
    identity_file: Path | None = None
    backfill_seconds: float = 0.0
    duration_seconds: float | None = None  # None: simulation.run_time_seconds
    live_dir: Path | None = None  # polled for live changes (simulator/live.py)


def status_name(safe_cities) -> str:
    """`sensor-<city-service-slug>` when exactly one city is hosted, else `sensor-all`."""
    cities = set(safe_cities)
    return f"sensor-{city_service_slug(cities.pop())}" if len(cities) == 1 else "sensor-all"


def select_specs(config, layout: ProjectLayout, request: HostingRequest, *, persist: bool) -> list[SensorSpec]:
    """The sensors to host, each with its folder."""
    data_dir = request.data_dir or layout.data
    if request.identity_file is not None:
        identity = load_identity(request.identity_file, config.seed)
        city, code = identity_dir_name(identity)
        return [SensorSpec(identity, data_dir / city / code)]
    from sensor_manager.plan import load_plan, resolve_plan, select_sensors

    stored = load_plan(layout) if request.sensor_ids else None
    if stored is not None and set(request.sensor_ids) <= {s.sensor_id for s in stored.sensors}:
        # A runtime's service runs its slice of the stored plan: its ids say which sensors, and the
        # config (which may lack a city `start --cities` added) is not asked to derive the fleet again.
        return [SensorSpec(SensorIdentity.from_plan(s), data_dir / s.safe_city / s.code)
                for s in select_sensors(stored, list(request.sensor_ids)).sensors]
    plan = resolve_plan(config, layout, persist=persist)
    if request.sensor_ids:
        plan = select_sensors(plan, list(request.sensor_ids))
    return [SensorSpec(SensorIdentity.from_plan(s), data_dir / s.safe_city / s.code, plan.fleet_epoch) for s in plan.sensors]


def _status_path(layout: ProjectLayout, request: HostingRequest, specs: list[SensorSpec]) -> Path:
    if request.status_file is not None:
        return request.status_file
    name = status_name(spec.directory.parent.name for spec in specs)
    return layout.status_file(*name.split("-", 1))


def plan_hosting(config, layout: ProjectLayout, request: HostingRequest) -> tuple[list[SensorSpec], RunOptions]:
    specs = select_specs(config, layout, request, persist=True)
    simulation = config.simulation
    if request.duration_seconds is not None:
        simulation = simulation.model_copy(update={"run_time_seconds": request.duration_seconds})
    status_path = _status_path(layout, request, specs)
    options = RunOptions(
        simulation=simulation,
        normal_parameters=config.normal_parameters,
        anomalies=config.anomalies,
        devices=config.devices,
        faults=config.faults,
        backfill_seconds=request.backfill_seconds,
        status_file=status_path,
        status_name=status_path.stem if request.status_file else status_name(s.directory.parent.name for s in specs),
        live_dir=request.live_dir,
    )
    return specs, options


def check_health(config, layout: ProjectLayout, request: HostingRequest) -> tuple[bool, str]:
    """`simulate --check`: is the status file of this selection fresh and free of fatal errors?"""
    if request.status_file is not None:
        return is_healthy(request.status_file)
    specs = select_specs(config, layout, request, persist=False)
    return is_healthy(_status_path(layout, request, specs))
