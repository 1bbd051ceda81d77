"""The compose stack as data: one service per sensor (or per `sensors_per_container` sensors of a city)
and one uploader per city, rendered from the plan and dumped with yaml.safe_dump.

Least privilege by construction: sensors have no network, a read-only root with a tmpfs, no
capabilities, no-new-privileges, a memory limit and a non-root user; they mount only their own data
folder. Uploaders mount their city's data folder read-only plus the lake, archive and their state
paths, and get the host network only when a sink needs one. Config reaches containers as a rendered
per-role directory without secrets, mounted read-only; secrets only as compose `secrets:` files.
Rendering is pure (no engine, no disk); `write_stack` and `prepare_mounts` do the I/O.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from fleetcore.atomicfiles import write_atomic
from fleetcore.errors import UsageError
from sensor_manager.layout import ProjectLayout
from sensor_manager.plan import FleetPlan
from sensor_manager.runtimes.base import Service, plan_services
from sensor_manager.runtimes.compose_files import CONFIG_FILE, role_config, role_config_dir
from sensor_manager.runtimes.compose_settings import DockerSettings
from sensor_manager.simulator.live import SETTINGS_FILE, settings_bytes
from uploader.sinks import SINKS

LABEL = "io.sensor-manager"
PROJECT_LABEL = f"{LABEL}.project"
ROLE_LABEL = f"{LABEL}.role"
CITY_LABEL = f"{LABEL}.city"
SENSOR_ID_LABEL = f"{LABEL}.sensor-id"
PLAN_HASH_LABEL = f"{LABEL}.plan-hash"
PROJECT_DIR_LABEL = f"{LABEL}.project-dir"

NONROOT_UID = 65532  # used when the invoking user is root (the distroless "nonroot" id)
CONTAINER_ROOT = "/project"  # the project directory inside a container (only parts of it are mounted)
CONFIG_MOUNT = "/config"  # the rendered per-role config directory (uploaders)
# Sensors see their role directory as the project's state/: `simulate` resolves the plan from
# <project-dir>/state/plan.json, and a read-only copy that matches the config is never rewritten.
SENSOR_STATE_MOUNT = f"{CONTAINER_ROOT}/state"
PLAN_FILE = "plan.json"
SECRETS_MOUNT = "/run/secrets"
# `simulate --check` / `uploader --check` without the CLI start-up (see runtimes/healthcheck.py).
HEALTHCHECK = ("python", "-m", "sensor_manager.runtimes.healthcheck")
PROJECT_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# Secret name -> the environment variable that tells the container where the file is (never the value).
SECRET_ENV = {name: variable for spec in SINKS.values() for name, variable in spec.secret_env.items()}


@dataclass(frozen=True)
class StackInputs:
    """Everything the render needs beyond the plan and config; fixed values make it reproducible."""

    layout: ProjectLayout
    project_name: str
    image: str
    user: str  # "uid:gid"
    settings: DockerSettings = field(default_factory=DockerSettings)
    secrets: tuple[str, ...] = ()  # names of secret files present under state/secrets
    memory_limit: bool = True  # False where the engine cannot enforce one (the caller warns)


# ---- names ---------------------------------------------------------------------------------------

def default_project_name(layout: ProjectLayout) -> str:
    """`sm-<slug of the project dir>-<6 hex of its absolute path>`: two project dirs never share a project."""
    slug = re.sub(r"[^a-z0-9]+", "-", layout.root.name.lower()).strip("-")[:40].strip("-") or "project"
    digest = hashlib.sha256(str(layout.root.resolve()).encode()).hexdigest()[:6]
    return f"sm-{slug}-{digest}"


def validate_project_name(name: str) -> str:
    if not PROJECT_NAME_PATTERN.match(name):
        raise UsageError(
            f"--project-name {name!r}: a compose project name is 1-63 of lowercase letters, digits, '-' and '_',"
            " starting with a letter or digit"
        )
    return name


def container_user(uid: int | None = None, gid: int | None = None) -> str:
    """The invoking user's uid:gid, or 65532:65532 when that is root."""
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    return f"{NONROOT_UID}:{NONROOT_UID}" if uid == 0 else f"{uid}:{gid}"


def plan_hash(plan: FleetPlan) -> str:
    """12 hex of the plan's identity (what plan.json holds); vars() because asdict() deep-copies, 10x slower."""
    document = json.dumps([plan.project, plan.seed, plan.fleet_epoch, [vars(s) for s in plan.sensors]],
                          sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(document.encode()).hexdigest()[:12]


def compose_file(layout: ProjectLayout) -> Path:
    return layout.state / "compose" / "docker-compose.yml"




# ---- which sinks need what -----------------------------------------------------------------------

def uploader_needs_network(config, settings: DockerSettings) -> bool:
    """True when an enabled sink talks to a remote service (its module says so, or its path is a URL)."""
    if settings.uploader_network:
        return settings.uploader_network == "host"
    for name, sink in config.uploader.sinks.enabled().items():
        if SINKS[name].needs_network or "://" in str(getattr(sink, "path", None) or ""):
            return True
    return False


def collect_secrets(config, environ: Mapping[str, str]) -> dict[str, str]:
    """Secret name -> file content, for the enabled sinks only; values never enter the compose file."""
    secrets: dict[str, str] = {}
    for name, sink in config.uploader.sinks.enabled().items():
        secrets.update(SINKS[name].secrets(sink, environ))
    return secrets


def passthrough_env(config) -> list[str]:
    """Standard variables the enabled sinks' SDKs read (region, endpoint): named in compose without a value,
    so compose takes each from the environment of `compose up` and no value is written into the file."""
    names = [variable for name in config.uploader.sinks.enabled() for variable in SINKS[name].container_env]
    return list(dict.fromkeys(names))


# ---- the render ----------------------------------------------------------------------------------

def _in_container(relative: str) -> str:
    return f"{CONTAINER_ROOT}/{relative}"


def _bind(source: Path, target: str, read_only: bool = False) -> dict[str, Any]:
    mount: dict[str, Any] = {"type": "bind", "source": str(source), "target": target}
    if read_only:
        mount["read_only"] = True
    mount["bind"] = {"create_host_path": False}
    return mount


def _labels(inputs: StackInputs, plan_digest: str, service: Service) -> dict[str, str]:
    labels = {
        PROJECT_LABEL: inputs.project_name,
        ROLE_LABEL: service.role,
        CITY_LABEL: service.safe_city,
    }
    if service.role == "sensor":
        labels[SENSOR_ID_LABEL] = ",".join(service.sensor_ids)
    labels[PLAN_HASH_LABEL] = plan_digest
    labels[PROJECT_DIR_LABEL] = str(inputs.layout.root)
    return labels


def _hardening(inputs: StackInputs, memory: str) -> dict[str, Any]:
    settings = inputs.settings
    common: dict[str, Any] = {
        "image": inputs.image,
        "user": inputs.user,
        "init": True,
        "read_only": True,
        "tmpfs": [f"/tmp:size={settings.tmpfs_size},mode=1777"],
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "pids_limit": 256,
        "restart": f"on-failure:{settings.restart_max_attempts}",
        "stop_grace_period": f"{settings.stop_grace_seconds}s",
        "logging": {"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}},
    }
    if inputs.memory_limit:
        common["mem_limit"] = memory
        common["memswap_limit"] = memory
    return common


def _healthcheck(settings: DockerSettings, test: list[str]) -> dict[str, Any]:
    return {
        "test": ["CMD", *test],
        "interval": f"{settings.healthcheck_interval_seconds}s",
        "timeout": "10s",
        "retries": settings.healthcheck_retries,
        "start_period": f"{settings.start_period_seconds}s",
    }


def _config_mount(inputs: StackInputs, role: str) -> dict[str, Any]:
    return _bind(role_config_dir(inputs.layout, role), CONFIG_MOUNT, read_only=True)


def sensor_status_file(service: Service) -> str:
    """The status file a sensor container writes (its first sensor's folder), inside the container."""
    return _in_container(f"{service.sensors[0].sensor_dir}/status.json")


def sensor_command(service: Service) -> list[str]:
    """`simulate` for the service's sensors, by id, reading the role config mounted at SENSOR_STATE_MOUNT."""
    config_file = f"{SENSOR_STATE_MOUNT}/{CONFIG_FILE}"
    command = ["python", "-m", "sensor_manager", "simulate", "--config", config_file, "--project-dir", CONTAINER_ROOT,
               "--live-dir", SENSOR_STATE_MOUNT]
    for sensor in service.sensors:
        command += ["--sensor-id", sensor.sensor_id]
    return command + ["--status-file", sensor_status_file(service)]


def uploader_slug(service: Service) -> str:
    return service.name.removeprefix("uploader-")


def uploader_command(service: Service) -> list[str]:
    """The city's continuous uploader, reading the role config mounted at CONFIG_MOUNT."""
    return [
        "python", "-m", "uploader", "--config", f"{CONFIG_MOUNT}/{CONFIG_FILE}",
        "--sqlite", _in_container(f"data/{service.safe_city}"), "--project-dir", CONTAINER_ROOT,
        "--uploader-id", uploader_slug(service), "--state-dir", _in_container("state"), "--lake", _in_container("lake"),
        "--continuous",
    ]


def sensor_service(service: Service, inputs: StackInputs, plan_digest: str) -> dict[str, Any]:
    layout = inputs.layout
    status_file = sensor_status_file(service)
    command = sensor_command(service)
    spec = _hardening(inputs, inputs.settings.sensor_memory)
    spec.update({
        "command": command,
        "network_mode": "none",
        "volumes": [_bind(role_config_dir(layout, "sensor"), SENSOR_STATE_MOUNT, read_only=True)]
        + [_bind(layout.root / s.sensor_dir, _in_container(s.sensor_dir)) for s in service.sensors],
        "healthcheck": _healthcheck(inputs.settings, [*HEALTHCHECK, "sensor", status_file]),
        "labels": _labels(inputs, plan_digest, service),
    })
    return spec


def uploader_state_paths(layout: ProjectLayout) -> list[Path]:
    """The parts of state/ an uploader writes: checkpoints, locks, status files, dead letters."""
    return [layout.checkpoints, layout.locks, layout.status_dir, layout.deadletter]


def uploader_service(service: Service, config, inputs: StackInputs, plan_digest: str) -> dict[str, Any]:
    layout = inputs.layout
    slug = uploader_slug(service)
    city_data = f"data/{service.safe_city}"
    command = uploader_command(service)
    volumes = [
        _config_mount(inputs, "uploader"),
        _bind(layout.root / city_data, _in_container(city_data), read_only=True),
        _bind(layout.lake, _in_container("lake")),
        _bind(layout.archive, _in_container("archive")),
    ] + [_bind(path, _in_container(f"state/{path.name}")) for path in uploader_state_paths(layout)]
    spec = _hardening(inputs, inputs.settings.uploader_memory)
    spec.update({
        "command": command,
        "network_mode": "host" if uploader_needs_network(config, inputs.settings) else "none",
        "environment": {**dict.fromkeys(passthrough_env(config)),
                        **{SECRET_ENV[name]: f"{SECRETS_MOUNT}/{name}" for name in inputs.secrets}},
        "volumes": volumes,
        "healthcheck": _healthcheck(inputs.settings, [*HEALTHCHECK, "uploader", _in_container(f"state/status/uploader-{slug}.json")]),
        "labels": _labels(inputs, plan_digest, service),
    })
    if inputs.secrets:
        spec["secrets"] = [{"source": name, "target": name} for name in inputs.secrets]
    if not spec["environment"]:
        del spec["environment"]
    return spec


def stack_services(plan: FleetPlan, settings: DockerSettings) -> list[Service]:
    return plan_services(plan, settings.sensors_per_container)


def render_stack(plan: FleetPlan, config, inputs: StackInputs) -> dict[str, Any]:
    """The compose document for `plan` (pure: the same inputs give the same document)."""
    digest = plan_hash(plan)
    services: dict[str, Any] = {}
    for service in stack_services(plan, inputs.settings):
        if service.role == "sensor":
            services[service.name] = sensor_service(service, inputs, digest)
        else:
            services[service.name] = uploader_service(service, config, inputs, digest)
    document: dict[str, Any] = {"name": inputs.project_name, "services": services}
    if inputs.secrets:
        document["secrets"] = {name: {"file": str(inputs.layout.secrets / name)} for name in inputs.secrets}
    return document


def dump_stack(document: dict[str, Any]) -> str:
    """The compose file text; every string value escaped so compose interpolation gives it back verbatim."""
    header = "# Generated by sensor-manager from state/plan.json; edits are overwritten by the next `compose` or `start`.\n"
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    escaped = escape_interpolation(document)
    return header + yaml.dump(escaped, Dumper=dumper, sort_keys=False, default_flow_style=False, width=4096, allow_unicode=True)


def escape_interpolation(value: Any) -> Any:
    """`$` -> `$$` in every string value: compose would otherwise read `$HOME` in a project path as a variable."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {key: escape_interpolation(item) for key, item in value.items()}
    if isinstance(value, list):
        return [escape_interpolation(item) for item in value]
    return value


# ---- the files behind the render -----------------------------------------------------------------

def _write_if_changed(path: Path, text: str, mode: int | None = None) -> None:
    if not path.is_file() or path.read_text() != text:
        write_atomic(path, text, mode)


def write_role_configs(layout: ProjectLayout, config, plan: FleetPlan) -> list[Path]:
    """state/compose/config/<role>/{sensor-manager.yaml, plan.json}: what containers read, rewritten in place (hot reload)."""
    written = []
    for role in ("sensor", "uploader"):
        directory = role_config_dir(layout, role)
        config_text = yaml.safe_dump(role_config(config, role, plan), sort_keys=False, allow_unicode=True)
        _write_if_changed(directory / CONFIG_FILE, config_text, 0o644)
        os.chmod(directory, 0o755)
        written.append(directory / CONFIG_FILE)
    written += write_role_plans(layout, plan)
    # What running sensors poll for live changes (simulator/live.py), beside their config and plan.
    settings = role_config_dir(layout, "sensor") / SETTINGS_FILE
    _write_if_changed(settings, settings_bytes(config).decode(), 0o644)
    written.append(settings)
    return written


def write_role_plans(layout: ProjectLayout, plan: FleetPlan) -> list[Path]:
    """The stored plan as containers read it (a rollout rewrites it while they run)."""
    plan_text = json.dumps(plan.to_dict(), indent=2, sort_keys=True) + "\n"
    written = []
    for role in ("sensor", "uploader"):
        path = role_config_dir(layout, role) / PLAN_FILE
        _write_if_changed(path, plan_text, 0o644)
        written.append(path)
    return written


def write_secrets(layout: ProjectLayout, secrets: Mapping[str, str], uid: int, gid: int) -> list[str]:
    """state/secrets/<name>: 0400, owned by the container user (root can chown; others already own them)."""
    layout.secrets.mkdir(parents=True, exist_ok=True)
    os.chmod(layout.secrets, 0o700)
    names = []
    for name, value in sorted(secrets.items()):
        path = layout.secrets / name
        if path.exists():
            os.chmod(path, 0o600)
        _write_if_changed(path, value, 0o400)
        os.chmod(path, 0o400)
        if os.getuid() == 0:
            os.chown(path, uid, gid)
        names.append(name)
    for stale in layout.secrets.iterdir():
        if stale.name not in secrets and stale.name in SECRET_ENV:
            stale.unlink()
    if os.getuid() == 0 and secrets:
        # The directory must be traversable by the container user for the bind mount of each file.
        os.chown(layout.secrets, uid, gid)
    return names


def bind_sources(document: dict[str, Any]) -> list[Path]:
    """Every host directory the stack bind-mounts read-write (read-only ones too: they must exist)."""
    sources = []
    for spec in document["services"].values():
        for mount in spec.get("volumes", []):
            sources.append(Path(mount["source"]))
    return list(dict.fromkeys(sources))


def prepare_mounts(layout: ProjectLayout, document: dict[str, Any], uid: int, gid: int) -> None:
    """Create every bind-mount source before `up` (Docker would create them as root) and hand them to the container user."""
    config_dirs = {role_config_dir(layout, role) for role in ("sensor", "uploader")}
    for source in bind_sources(document):
        source.mkdir(parents=True, exist_ok=True)
        if os.getuid() == 0 and source not in config_dirs:
            _chown_tree(source, uid, gid)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    """chown `root` and what is under it, skipping entries that already belong to uid:gid (cheap on re-runs)."""
    for directory, _dirnames, filenames in os.walk(root):
        for name in [directory, *(os.path.join(directory, f) for f in filenames)]:
            try:
                stat = os.lstat(name)
                if (stat.st_uid, stat.st_gid) != (uid, gid):
                    os.lchown(name, uid, gid)
            except FileNotFoundError:
                continue


def write_stack(path: Path, document: dict[str, Any]) -> Path:
    _write_if_changed(path, dump_stack(document), 0o644)
    return path
