"""Preflight: every check `start` makes before it changes anything on disk.

Config validity is established by loading it; here: the plan still matches the config, the project's
paths are writable, there is disk space, the configured sinks have credentials, and the runtime's
programs are installed. All problems are collected and reported together.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from fleetcore.errors import ConfigError, EngineUnavailableError, PlanChangedError, ResourceLimitError, UsageError
from sensor_manager.config import Config
from sensor_manager.layout import ProjectLayout
from sensor_manager.plan import FleetPlan, fleet_plan

MIN_FREE_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str  # what was found, or what is wrong and what to do


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(layout: ProjectLayout) -> Check:
    problems = []
    for path in (layout.root, layout.data, layout.lake, layout.archive, layout.state):
        if path.exists() and not path.is_dir():
            problems.append(f"{path} exists and is not a directory")
            continue
        target = _existing_ancestor(path)
        if not os.access(target, os.W_OK | os.X_OK):
            problems.append(f"{target} is not writable (needed for {path.name}/); fix its permissions or choose another --project-dir")
    return Check("paths writable", not problems, "; ".join(problems) or str(layout.root))


def check_disk_space(layout: ProjectLayout, min_free_bytes: int = MIN_FREE_BYTES) -> Check:
    free = shutil.disk_usage(_existing_ancestor(layout.root)).free
    ok = free >= min_free_bytes
    detail = f"{free / 2**30:.1f} GiB free"
    if not ok:
        detail += f" under {layout.root}; at least {min_free_bytes / 2**20:.0f} MiB needed: free some space"
    return Check("disk space", ok, detail)


def check_sink_credentials(config: Config) -> Check:
    """What each enabled sink's module says `start` must see (bucket, credentials, endpoint), without the network."""
    from uploader.sinks import SINKS

    enabled = config.uploader.sinks.enabled()
    problems = [problem for name, settings in enabled.items() for problem in SINKS[name].preflight(settings, os.environ)]
    if not enabled:
        problems.append("no sink is enabled under uploader.sinks: enable at least one (delta is the default)")
    return Check("sink credentials", not problems, "; ".join(problems) or ", ".join(enabled))


def sink_checks(config: Config, layout: ProjectLayout, *, remote_only: bool = False, skip: frozenset[Path] = frozenset()) -> list[Check]:
    """Each enabled sink's own `check()` (probe object put, listed, deleted; table readable), one Check per sink.

    A sink whose location in the project does not exist yet is skipped (its check would create it);
    `remote_only` keeps the sinks that talk to a remote service (what `start` may probe without writing here);
    `skip` names project locations checked elsewhere."""
    from fleetcore.errors import SensorManagerError
    from uploader.sinks import SINKS
    from uploader.sinks.base import SinkContext

    checks = []
    for name, settings in config.uploader.sinks.enabled().items():
        spec = SINKS[name]
        context = SinkContext(lake=layout.lake, project_dir=layout.root, stage=config.uploader.stage_of(name),
                              window=config.uploader.aggregated.table_suffix.removeprefix("_"))
        owned = spec.project_path(settings, context)
        if (remote_only and not spec.needs_network) or (owned is not None and (not owned.exists() or owned in skip)):
            continue
        try:
            result = spec.build(settings, context).check()
            ok, detail = result.ok, result.message
        except SensorManagerError as exc:
            ok, detail = False, f"{name}: {exc}"
        checks.append(Check(f"sink {name}", ok, detail))
    return checks


def check_local_programs() -> Check:
    missing = [name for name in ("uploader", "sensor_manager.simulator") if importlib.util.find_spec(name) is None]
    detail = f"missing Python packages: {', '.join(missing)}; reinstall the project" if missing else "simulator, uploader"
    return Check("programs installed", not missing, detail)


def check_engine() -> Check:
    from sensor_manager.runtimes.engine import engine_available

    ok, why = engine_available()
    return Check("container engine", ok, why)


def check_plan(config: Config, layout: ProjectLayout, *, replan: bool = False, keep_stored: bool = False) -> tuple[Check, FleetPlan | None]:
    try:
        plan, differences = fleet_plan(config, layout, persist=False, replan=replan, keep_stored=keep_stored)
    except (PlanChangedError, UsageError) as exc:
        return Check("plan matches config", False, str(exc)), None
    kept = "; the stored plan runs (the config differs from it)" if differences else ""
    return Check("plan matches config", True, f"{len(plan.sensors)} sensors in {len(plan.cities)} cities{kept}"), plan


def check_central_store(config: Config) -> Check:
    """A fleet spread over nodes needs a store every node reaches: refused when every enabled sink writes node-local files."""
    from uploader.sinks import SINKS

    enabled = config.uploader.sinks.enabled()
    remote = [name for name, sink in enabled.items() if SINKS[name].needs_network or "://" in str(getattr(sink, "path", None) or "")]
    if remote or config.swarm.shared_lake:
        return Check("central store", True, ", ".join(remote) or "swarm.shared_lake: lake/ is one shared mount on every node")
    return Check("central store", False, f"the enabled sinks ({', '.join(enabled) or 'none'}) write each node's own lake/: "
                 "enable a central sink (uploader.sinks.s3), or set swarm.shared_lake: true when lake/ and archive/ are one shared mount on every node")


def check_swarm_placement(config: Config, plan: FleetPlan | None) -> list[Check]:
    """The engine is a swarm manager, and every city of the plan has a node to run on."""
    from sensor_manager.runtimes import topology
    from sensor_manager.runtimes.engine import docker_client

    try:
        nodes = topology.read_nodes(docker_client(timeout=10))
    except EngineUnavailableError as exc:
        return [Check("container engine", False, str(exc))]
    engine = Check("container engine", True, f"swarm manager, {len(nodes)} node(s)")
    if plan is None:
        return [engine]
    problems = topology.placement_problems(list(plan.cities), nodes, config.swarm)
    found = topology.placement(list(plan.cities), nodes, config.swarm)
    detail = "; ".join(problems) or ", ".join(f"{city} on {', '.join(hosts)}" for city, hosts in found.items())
    return [engine, Check("placement", not problems, detail)]


def run_preflight(config: Config, layout: ProjectLayout, runtime: str, *, replan: bool = False, keep_stored: bool = False) -> list[Check]:
    """All checks, failing or not (nothing is written); docker: the engine answers and Compose v2 is present;
    swarm: the engine is a swarm manager, every city has a node, and the sinks reach a central store."""
    plan_check, plan = check_plan(config, layout, replan=replan, keep_stored=keep_stored)
    checks = [plan_check, check_writable(layout), check_disk_space(layout), check_sink_credentials(config)]
    if checks[-1].ok:  # with a bucket and credentials, the remote sinks must answer a probe before anything starts
        checks.extend(sink_checks(config, layout, remote_only=True))
    if runtime == "local":
        checks.append(check_local_programs())
    if runtime == "docker":
        checks.append(check_engine())
    if runtime == "swarm":
        checks.append(check_central_store(config))
        checks.extend(check_swarm_placement(config, plan))
    return checks


def require_preflight(config: Config, layout: ProjectLayout, runtime: str, *, replan: bool = False, keep_stored: bool = False) -> list[Check]:
    """Run the checks; raise listing every failure (engine: exit 3, disk space: ResourceLimitError, else ConfigError)."""
    checks = run_preflight(config, layout, runtime, replan=replan, keep_stored=keep_stored)
    failed = [c for c in checks if not c.ok]
    if not failed:
        return checks
    lines = [f"preflight: {c.name}: {c.detail}" for c in failed]
    if any(c.name == "container engine" for c in failed):
        raise EngineUnavailableError("\n".join(lines))
    if all(c.name == "disk space" for c in failed):
        raise ResourceLimitError("\n".join(lines))
    raise ConfigError(lines)
