"""The plan as Bacalhau v2 job specs: one `daemon` job per city, pinned by the node label
`io.sensor-manager.city=<City>`, with a `sensors` task and an `uploader` task on the same node.

Why `daemon`: it runs one execution on every node that matches the constraints, for as long as the
node is up, and starts one on a node that joins later. A `service` job places Count replicas on any
matching nodes and may move them: a sensor's DB is node-local, so a moved sensor would start an
empty buffer elsewhere (and two replicas would be two writers of one sensor id). An `ops` job also
runs on every matching node but runs to completion, like a batch job; sensors and uploaders never
complete. Label exactly one node per city: each matching node runs the city's plan slice.

Commands are the compose render's (`compose_render.sensor_command` / `uploader_command`); the node
holds the project directory at `node_root` (data, state, lake, the rendered role configs) and the
engine mounts its parts as `localDirectory` input sources. Secrets never enter the spec: they stay
0400 files under `<node_root>/state/secrets/` on the node, mounted read-only, the container told
only the file's path (as in the compose stack). Rendering is pure; `write_specs` does the I/O.
Submitting and reading status shell out to the `bacalhau` CLI.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Mapping

import yaml

from fleetcore.atomicfiles import write_atomic
from fleetcore.errors import ConfigError, ProcessFailedError, UsageError
from fleetcore.naming import city_service_slug
from sensor_manager.layout import ProjectLayout
from sensor_manager.plan import FleetPlan
from sensor_manager.runtimes import compose_render as cr
from sensor_manager.runtimes.bacalhau_models import spec_problems
from sensor_manager.runtimes.base import Service, plan_services

JOB_TYPE = "daemon"
DEFAULT_NODE_ROOT = "/var/lib/sensor-manager"
LOCAL_DIRECTORY = "localDirectory"  # the engine's node-local input source; the node must allow-list the path
JOBS_FILE = "jobs.json"
CLI_REMEDY = ("install the Bacalhau CLI (https://docs.bacalhau.org/getting-started/installation) and point it at"
              " your orchestrator (BACALHAU_API_HOST), or use `bacalhau submit --dry-run` to see the commands")

Runner = Callable[[list[str]], subprocess.CompletedProcess]


@dataclass(frozen=True)
class JobInputs:
    """What the render needs beyond the plan and config."""

    image: str
    node_root: str = DEFAULT_NODE_ROOT
    secrets: tuple[str, ...] = ()  # names of secret files each node holds under <node_root>/state/secrets


def spec_dir(layout: ProjectLayout) -> Path:
    return layout.state / "bacalhau"


def spec_path(layout: ProjectLayout, safe_city: str) -> Path:
    return spec_dir(layout) / f"{city_service_slug(safe_city)}.yaml"


def job_name(plan: FleetPlan, safe_city: str) -> str:
    return f"{plan.project}-{city_service_slug(safe_city)}"


# ---- the render ----------------------------------------------------------------------------------

def _on_node(inputs: JobInputs, relative: str) -> str:
    return str(PurePosixPath(inputs.node_root) / relative)


def _local(inputs: JobInputs, relative: str, target: str, read_write: bool) -> dict[str, Any]:
    return {"Source": {"Type": LOCAL_DIRECTORY, "Params": {"SourcePath": _on_node(inputs, relative), "ReadWrite": read_write}},
            "Target": target}


def _docker(image: str, command: list[str]) -> dict[str, Any]:
    return {"Type": "docker", "Params": {"Image": image, "Entrypoint": command, "WorkingDirectory": cr.CONTAINER_ROOT}}


def _config_dir(role: str) -> str:
    return f"state/compose/config/{role}"


def sensors_task(service: Service, inputs: JobInputs) -> dict[str, Any]:
    """All the city's sensors in one container: no network, its config read-only, its data folder read-write."""
    city_data = f"data/{service.safe_city}"
    return {
        "Name": "sensors",
        "Engine": _docker(inputs.image, cr.sensor_command(service)),
        "InputSources": [
            _local(inputs, _config_dir("sensor"), cr.SENSOR_STATE_MOUNT, read_write=False),
            _local(inputs, city_data, f"{cr.CONTAINER_ROOT}/{city_data}", read_write=True),
        ],
        "Network": {"Type": "None"},
    }


def uploader_task(service: Service, config, inputs: JobInputs, settings) -> dict[str, Any]:
    """The city's uploader next to its sensors: their data read-only, its state, lake and archive read-write."""
    city_data = f"data/{service.safe_city}"
    node = ProjectLayout(Path(inputs.node_root))
    writable = ["lake", "archive"] + [str(path.relative_to(node.root)) for path in cr.uploader_state_paths(node)]
    sources = [
        _local(inputs, _config_dir("uploader"), cr.CONFIG_MOUNT, read_write=False),
        _local(inputs, city_data, f"{cr.CONTAINER_ROOT}/{city_data}", read_write=False),
    ] + [_local(inputs, relative, f"{cr.CONTAINER_ROOT}/{relative}", read_write=True) for relative in writable]
    sources += [_local(inputs, f"state/secrets/{name}", f"{cr.SECRETS_MOUNT}/{name}", read_write=False) for name in inputs.secrets]
    task: dict[str, Any] = {
        "Name": "uploader",
        "Engine": _docker(inputs.image, cr.uploader_command(service)),
        "InputSources": sources,
        "Network": {"Type": "Full" if cr.uploader_needs_network(config, settings) else "None"},
    }
    if inputs.secrets:
        # Where the secret file is, never its value (the same variables the compose stack sets).
        task["Env"] = {cr.SECRET_ENV[name]: f"{cr.SECRETS_MOUNT}/{name}" for name in inputs.secrets}
    return task


def render_job(plan: FleetPlan, config, safe_city: str, inputs: JobInputs) -> dict[str, Any]:
    """The job spec of one city of `plan` (pure)."""
    services = {s.role: s for s in plan_services(plan, None) if s.safe_city == safe_city}
    if "sensor" not in services:
        raise UsageError(f"city {safe_city!r} is not in the plan; planned: {', '.join(plan.by_city())}")
    return {
        "Name": job_name(plan, safe_city),
        "Type": JOB_TYPE,
        "Constraints": [{"Key": cr.CITY_LABEL, "Operator": "=", "Values": [safe_city]}],
        "Meta": {cr.PROJECT_LABEL: plan.project, cr.CITY_LABEL: safe_city, cr.PLAN_HASH_LABEL: cr.plan_hash(plan),
                 cr.SENSOR_ID_LABEL: ",".join(services["sensor"].sensor_ids)},
        "Tasks": [sensors_task(services["sensor"], inputs),
                  uploader_task(services["uploader"], config, inputs, config.docker)],
    }


def render_jobs(plan: FleetPlan, config, inputs: JobInputs) -> dict[str, dict[str, Any]]:
    """Safe city name -> its job spec, in plan order."""
    return {safe_city: render_job(plan, config, safe_city, inputs) for safe_city in plan.by_city()}


def dump_job(document: dict[str, Any]) -> str:
    header = "# Generated by sensor-manager from state/plan.json (`bacalhau render`); edits are overwritten.\n"
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=4096, allow_unicode=True)


def secret_names(config, environ: Mapping[str, str]) -> tuple[str, ...]:
    """The secret files the enabled sinks need on each node (names only)."""
    return tuple(sorted(cr.collect_secrets(config, environ)))


@dataclass(frozen=True)
class RenderResult:
    specs: dict[str, Path]  # safe city -> spec file
    role_configs: list[Path]
    image: str


def write_specs(layout: ProjectLayout, plan: FleetPlan, config, inputs: JobInputs) -> RenderResult:
    """state/bacalhau/<city-slug>.yaml per city, plus the role configs the nodes mount (no secrets)."""
    directory = spec_dir(layout)
    written: dict[str, Path] = {}
    for safe_city, document in render_jobs(plan, config, inputs).items():
        path = spec_path(layout, safe_city)
        write_atomic(path, dump_job(document), 0o644)
        written[safe_city] = path
    stale = {p for p in directory.glob("*.yaml")} - set(written.values())
    for path in stale:
        path.unlink()
    return RenderResult(written, cr.write_role_configs(layout, config, plan), inputs.image)


def image_reference(layout: ProjectLayout, config, *, tag: str | None, base_image: str | None, registry: str | None) -> str:
    """The content-addressed tag (as `build` makes it; hashing needs an engine), or `<repository>:<tag>`; under `registry/` when given."""
    from fleetcore.errors import EngineUnavailableError
    from sensor_manager.runtimes import image as images
    from sensor_manager.runtimes.compose import ComposeRuntime

    images.validate_tag(tag)
    if tag:
        image = f"{config.docker.image_repository}:{tag}"
    else:
        runtime = ComposeRuntime(layout, image=images.ImageOptions(base_image=base_image))
        try:
            image = runtime.image_tag(config)
        except EngineUnavailableError as exc:
            raise EngineUnavailableError(f"{exc}; the image tag hashes the base image, so without an engine pass --tag T") from None
    # Nodes pull by name: the same reference `build --push --registry R` pushed.
    return f"{registry.rstrip('/')}/{image}" if registry else image


def render(
    layout: ProjectLayout,
    config,
    *,
    tag: str | None = None,
    base_image: str | None = None,
    registry: str | None = None,
    node_root: str = DEFAULT_NODE_ROOT,
    replan: bool = False,
    environ: Mapping[str, str] | None = None,
) -> RenderResult:
    """`bacalhau render`: the stored plan (grown or replanned like `compose`) as one job spec per city."""
    import os

    from sensor_manager.plan import resolve_plan

    if not PurePosixPath(node_root).is_absolute():
        raise UsageError(f"--node-root {node_root!r}: must be an absolute path on the nodes")
    image = image_reference(layout, config, tag=tag, base_image=base_image, registry=registry)
    plan = resolve_plan(config, layout, persist=True, replan=replan)
    secrets = secret_names(config, os.environ if environ is None else environ)
    return write_specs(layout, plan, config, JobInputs(image, node_root, secrets))


# ---- validate ------------------------------------------------------------------------------------

def spec_files(layout: ProjectLayout, files: list[Path] | None) -> list[Path]:
    """The files named, else every rendered spec; none at all is a usage error."""
    if files:
        return list(files)
    found = sorted(spec_dir(layout).glob("*.yaml"))
    if not found:
        raise UsageError(f"{spec_dir(layout)}: no job specs; run `bacalhau render` first")
    return found


def validate_files(paths: list[Path]) -> list[Path]:
    """Check every file; all problems at once as one ConfigError (one line each), else the files checked."""
    problems: list[str] = []
    for path in paths:
        try:
            text = path.read_text()
        except OSError as exc:
            problems.append(f"{path}: cannot read ({exc.strerror or exc})")
            continue
        problems += [f"{path}: {problem}" for problem in spec_problems(text)]
    if problems:
        raise ConfigError(problems)
    return paths


# ---- submit and status ---------------------------------------------------------------------------

def bacalhau_cli() -> str:
    found = shutil.which("bacalhau")
    if found is None:
        raise UsageError(f"no `bacalhau` CLI on PATH; {CLI_REMEDY}")
    return found


def submit_commands(paths: list[Path], executable: str = "bacalhau") -> list[list[str]]:
    # --wait=false: a daemon job never completes; --id-only: stdout is the job id we record.
    return [[executable, "job", "run", "--wait=false", "--id-only", str(path)] for path in paths]


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)


def _checked(command: list[str], runner: Runner) -> str:
    result = runner(command)
    if result.returncode != 0:
        detail = " ".join((result.stderr or result.stdout or "").strip().splitlines()[-3:])
        raise ProcessFailedError(f"`bacalhau {' '.join(command[1:3])}` failed (exit {result.returncode}): {detail[:800]}")
    return result.stdout


def jobs_file(layout: ProjectLayout) -> Path:
    return spec_dir(layout) / JOBS_FILE


def submit(layout: ProjectLayout, paths: list[Path], runner: Runner = _run) -> dict[str, str]:
    """`bacalhau job run` per spec (validated first); spec file name -> job id, recorded in state/bacalhau/jobs.json."""
    validate_files(paths)
    executable = bacalhau_cli()
    jobs = read_jobs(layout)
    for path, command in zip(paths, submit_commands(paths, executable), strict=True):
        output = _checked(command, runner).strip()
        if not output:
            raise ProcessFailedError(f"`bacalhau job run {path}` printed no job id")
        jobs[path.name] = output.splitlines()[-1].strip()
        write_atomic(jobs_file(layout), json.dumps(jobs, indent=2, sort_keys=True) + "\n", 0o644)
    return jobs


def read_jobs(layout: ProjectLayout) -> dict[str, str]:
    try:
        jobs = json.loads(jobs_file(layout).read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise UsageError(f"{jobs_file(layout)}: not valid JSON ({exc}); delete it and submit again") from exc
    return {str(k): str(v) for k, v in jobs.items()} if isinstance(jobs, dict) else {}


@dataclass(frozen=True)
class JobStatus:
    spec: str
    job_id: str
    name: str
    state: str
    executions: list[dict[str, str]]  # {"node": ..., "state": ...}

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec, "job_id": self.job_id, "name": self.name, "state": self.state,
                "executions": self.executions}


def _state(value: Any) -> str:
    return str(value.get("StateType", "unknown")) if isinstance(value, dict) else str(value or "unknown")


def parse_describe(spec: str, job_id: str, text: str) -> JobStatus:
    """`bacalhau job describe --output json`: {"Job": {...}, "Executions": {"Items": [...]}}."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ProcessFailedError(f"`bacalhau job describe {job_id}` did not print JSON ({exc})") from exc
    job = document.get("Job") or {}
    executions = (document.get("Executions") or {}).get("Items") or []
    return JobStatus(
        spec, job.get("ID", job_id), job.get("Name", ""), _state(job.get("State")),
        [{"node": str(e.get("NodeID", "")), "state": _state(e.get("ComputeState"))} for e in executions],
    )


def status(layout: ProjectLayout, runner: Runner = _run) -> list[JobStatus]:
    """Each submitted job's state and its executions per node, as the orchestrator reports them."""
    jobs = read_jobs(layout)
    if not jobs:
        raise UsageError(f"{jobs_file(layout)}: no submitted jobs; run `bacalhau submit` first")
    executable = bacalhau_cli()
    return [parse_describe(spec, job_id, _checked([executable, "job", "describe", "--output", "json", job_id], runner))
            for spec, job_id in sorted(jobs.items())]
