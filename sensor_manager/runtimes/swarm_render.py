"""The Swarm stack file as data: the compose stack (compose_render) translated key by key for `docker stack deploy`.

What carries over unchanged: image, command, user, init, read-only root, cap_drop ALL, health checks,
stop grace period, log rotation, container labels, secret files mounted 0400. What Swarm spells
differently: the restart policy, the memory limit and the scope labels go under `deploy:`, the /tmp
tmpfs becomes a tmpfs mount, the role configs become Swarm configs and the secrets Swarm secrets
(both created by `stack deploy` from the rendered files; their names carry a version, as Swarm
objects cannot change). What Swarm does not offer (dropped, documented in docs/swarm.md):
`security_opt: no-new-privileges`, `pids_limit`, `memswap_limit` and `network_mode: none` (a service
always joins a network: sensors join one internal overlay network with no route out).
Rendering is pure; SwarmRuntime does the I/O.
"""
from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensor_manager.runtimes import compose_render as cr
from sensor_manager.runtimes.swarm_settings import SwarmSettings
from sensor_manager.runtimes.topology import constraints

STACK_VERSION = "3.8"
ISOLATED_NETWORK = "isolated"  # internal overlay: no route out (Swarm has no network_mode: none)
HOST_NETWORK = "hostnet"  # the engine's predefined `host` network
UNSUPPORTED_KEYS = ("security_opt", "pids_limit", "memswap_limit", "mem_limit", "restart", "tmpfs", "network_mode")
MAX_SERVICE_NAME = 63  # Swarm's limit on <stack>_<service>
SECRET_MODE = 0o400
CONFIG_MODE = 0o444


@dataclass(frozen=True)
class SwarmInputs:
    """What the translation needs beyond the compose document."""

    settings: SwarmSettings
    role_configs: dict[str, dict[str, Path]]  # role -> {file name: rendered file}
    secret_files: dict[str, Path] = field(default_factory=dict)  # secret name -> its 0400 file
    replicas: dict[str, int] = field(default_factory=dict)  # service -> replicas (missing: 1)


def size_bytes(size: str) -> int:
    """`16m` -> 16777216 (the stack file's tmpfs size is in bytes)."""
    match = re.fullmatch(r"([0-9]+)([kmg]?)", size)
    if match is None:  # DockerSettings.tmpfs_size is validated against this pattern
        raise ValueError(f"not a size: {size!r}")
    number, unit = match.groups()
    return int(number) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[unit]


def versioned_name(stack: str, kind: str, content: bytes) -> str:
    """`<stack>-<kind>-<10 hex of the content>`: a changed file becomes a new Swarm object (they are immutable)."""
    return f"{stack}-{kind}-{hashlib.sha256(content).hexdigest()[:10]}"


def secret_version(path: Path) -> str:
    """A secret's version from its file's change time, never from its content (a hash of a weak password leaks it)."""
    return format(path.stat().st_mtime_ns, "x")[-10:]


def _tmpfs_mount(spec: str) -> dict[str, Any]:
    target, _, options = spec.partition(":")
    size = dict(part.split("=", 1) for part in options.split(",") if "=" in part).get("size", "16m")
    return {"type": "tmpfs", "target": target, "tmpfs": {"size": size_bytes(size)}}


def _mounts(spec: dict[str, Any], role: str, inputs: SwarmInputs) -> list[dict[str, Any]]:
    """Bind mounts without compose's `bind.create_host_path` (not in the stack schema), minus the role config dir."""
    config_dir = str(next(iter(inputs.role_configs[role].values())).parent)
    mounts = []
    for mount in spec.get("volumes", []):
        if mount["source"] == config_dir:
            continue
        mounts.append({key: value for key, value in mount.items() if key != "bind"})
    return mounts + [_tmpfs_mount(entry) for entry in spec.get("tmpfs", [])]


def config_key(role: str, file: str) -> str:
    """`sensor-plan-json`: the stack's key of a role config file."""
    return f"{role}-{file.replace('.', '-')}"


def _config_target(role: str, name: str) -> str:
    return f"{cr.SENSOR_STATE_MOUNT if role == 'sensor' else cr.CONFIG_MOUNT}/{name}"


def _deploy(name: str, spec: dict[str, Any], inputs: SwarmInputs, restart_max_attempts: int) -> dict[str, Any]:
    labels = spec["labels"]
    deploy: dict[str, Any] = {
        "mode": "replicated",
        "replicas": inputs.replicas.get(name, 1),
        "labels": dict(labels),
        # `any`, not compose's on-failure: Swarm stops an unhealthy task with SIGTERM, our programs then exit 0,
        # and on-failure would leave the service with no task at all.
        "restart_policy": {"condition": "any", "delay": "5s", "max_attempts": restart_max_attempts},
        # stop-first: a sensor's DB and a city's checkpoints never have two writers during an update.
        "update_config": {"order": "stop-first", "parallelism": 0},
        "placement": {"constraints": constraints(labels[cr.CITY_LABEL], inputs.settings)},
    }
    if "mem_limit" in spec:
        deploy["resources"] = {"limits": {"memory": spec["mem_limit"]}}
    return deploy


def swarm_service(name: str, spec: dict[str, Any], inputs: SwarmInputs, restart_max_attempts: int, user: str) -> dict[str, Any]:
    role = spec["labels"][cr.ROLE_LABEL]
    uid, gid = user.split(":")
    service = {key: copy.deepcopy(value) for key, value in spec.items() if key not in UNSUPPORTED_KEYS and key not in ("volumes", "secrets")}
    if inputs.settings.registry:
        service["image"] = f"{inputs.settings.registry.rstrip('/')}/{spec['image']}"
    service["volumes"] = _mounts(spec, role, inputs)
    service["networks"] = [HOST_NETWORK if spec.get("network_mode") == "host" else ISOLATED_NETWORK]
    service["configs"] = [{"source": config_key(role, file), "target": _config_target(role, file),
                           "uid": uid, "gid": gid, "mode": CONFIG_MODE} for file in inputs.role_configs[role]]
    if spec.get("secrets"):
        service["secrets"] = [{"source": s["source"], "target": s["target"], "uid": uid, "gid": gid, "mode": SECRET_MODE}
                              for s in spec["secrets"]]
    service["deploy"] = _deploy(name, spec, inputs, restart_max_attempts)
    return service


def render_swarm_stack(compose: dict[str, Any], inputs: SwarmInputs, *, user: str, restart_max_attempts: int) -> dict[str, Any]:
    """The stack document for `docker stack deploy -c`, from the compose document of the same plan."""
    stack = compose["name"]
    project_label = {cr.PROJECT_LABEL: stack}
    services = {name: swarm_service(name, spec, inputs, restart_max_attempts, user)
                for name, spec in compose["services"].items()}
    networks: dict[str, Any] = {}
    used = {network for service in services.values() for network in service["networks"]}
    if ISOLATED_NETWORK in used:
        networks[ISOLATED_NETWORK] = {"driver": "overlay", "internal": True, "labels": project_label}
    if HOST_NETWORK in used:
        networks[HOST_NETWORK] = {"external": True, "name": "host"}
    configs = {config_key(role, file): {"file": str(path), "name": versioned_name(stack, config_key(role, file), path.read_bytes()),
                                        "labels": project_label}
               for role, files in inputs.role_configs.items() for file, path in files.items()}
    document: dict[str, Any] = {"version": STACK_VERSION, "services": services, "networks": networks, "configs": configs}
    if inputs.secret_files:
        document["secrets"] = {name: {"file": str(path), "name": f"{stack}-{name}-{secret_version(path)}", "labels": project_label}
                               for name, path in inputs.secret_files.items()}
    return document


def long_service_names(document: dict[str, Any], stack: str) -> list[str]:
    return [f"{stack}_{name}" for name in document["services"] if len(f"{stack}_{name}") > MAX_SERVICE_NAME]
