"""The swarm runtime: the plan as a Docker Swarm stack, deployed with `docker stack deploy` under this project's name.

It shares the image, the role configs and the secret files with the compose runtime (a subclass) and
renders the same services, translated by swarm_render. The engine does the supervising: it restarts a
failed task (restart policy), replaces an unhealthy one, and reschedules a node's tasks elsewhere
among the city's eligible nodes. Everything is read through the manager's API (services, tasks,
service logs), never from another node's files. `stop SERVICE` scales a service to 0 replicas; `stop`
removes the stack (`docker stack rm`) and waits for its containers on this node to exit. Every
removal is filtered by this project's label or the stack's namespace: another stack or service is
never touched.
"""
from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import yaml

from fleetcore.errors import ProcessFailedError, UsageError
from fleetcore.timestamps import iso_epoch
from sensor_manager.plan import FleetPlan
from sensor_manager.runtimes import compose_render as cr
from sensor_manager.runtimes import swarm_render as sr
from sensor_manager.runtimes import topology
from sensor_manager.runtimes.base import LogLine, ServiceStatus
from sensor_manager.runtimes.compose import ComposeRuntime, _log_line, _since_value, planned_row

log = logging.getLogger(__name__)

STACK_NAMESPACE = "com.docker.stack.namespace"
SERVICE_NAME_LABEL = "com.docker.swarm.service.name"
STOP_SLACK_SECONDS = 30  # beyond the stop grace period, for the engine to report the containers gone
FOLLOW_POLL_SECONDS = 1.0
ACTIVE_TASK_STATES = ("new", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running")


class SwarmRuntime(ComposeRuntime):
    name = "swarm"

    # --- identity and files ---------------------------------------------------------------------
    @property
    def record_path(self) -> Path:
        return self.layout.state / "swarm" / "project.json"

    @property
    def compose_path(self) -> Path:
        """The rendered stack file (the compose file of this runtime)."""
        return self.layout.state / "swarm" / "stack.yml"

    def _docker(self, *args: str) -> subprocess.CompletedProcess:
        command = ["docker", *args]
        log.debug("run: %s", shlex.join(command))
        result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            detail = " ".join((result.stderr or result.stdout or "").strip().splitlines()[-3:])
            raise ProcessFailedError(f"docker {' '.join(args[:2])} failed (exit {result.returncode}): {detail[:800]}")
        return result

    # --- render -----------------------------------------------------------------------------------
    def _replicas(self, services: list[str] | None, names: list[str]) -> dict[str, int]:
        """1 for the services asked for (all when None: no engine needed); the others keep what they run now (0 when new)."""
        if services is None:
            return dict.fromkeys(names, 1)
        current = {self._short(s): _replicas_of(s) for s in self._services()}
        return {name: 1 if name in services else current.get(name, 0) for name in names}

    def render(self, plan: FleetPlan, config, *, image: str | None = None, output: Path | None = None,
               services: list[str] | None = None) -> list[str]:
        """Write the role configs, the secret files and the stack file; return the paths."""
        image = image or self.image_tag(config)
        uid, gid = (int(part) for part in cr.container_user().split(":"))
        self.layout.ensure_state()
        secret_names = tuple(cr.write_secrets(self.layout, cr.collect_secrets(config, os.environ), uid, gid))
        compose, _ = self.stack(plan, config, image, secrets=secret_names)
        written = cr.write_role_configs(self.layout, config, plan)
        role_configs: dict[str, dict[str, Path]] = {}
        for path in written:
            role_configs.setdefault(path.parent.name, {})[path.name] = path
        inputs = sr.SwarmInputs(config.swarm, role_configs, {name: self.layout.secrets / name for name in secret_names},
                                self._replicas(services, list(compose["services"])))
        document = sr.render_swarm_stack(compose, inputs, user=cr.container_user(),
                                         restart_max_attempts=self._settings(config).restart_max_attempts)
        too_long = sr.long_service_names(document, self.project_name)
        if too_long:
            raise UsageError(f"Swarm service names are at most {sr.MAX_SERVICE_NAME} characters: {too_long[0]}; "
                             "choose a shorter --project-name")
        paths = [str(p) for p in written] + [str(cr.write_stack(self.compose_path, document))]
        if output is not None and Path(output).resolve() != self.compose_path.resolve():
            paths.append(str(cr.write_stack(Path(output), document)))
        self._write_record(image, self._settings(config))
        return paths

    # --- lifecycle ----------------------------------------------------------------------------------
    def start(self, plan: FleetPlan, config, services: list[str] | None = None) -> None:
        """Build the image if needed, render, create the mount sources here, then `docker stack deploy`."""
        topology.require_manager(self.client)
        image = self.ensure_image(config)
        planned = [s.name for s in self.services(plan, config)]
        targeted = services is not None and not set(services) >= set(planned)
        if services is not None and targeted and self._services():
            # Scale only the named services (as `compose up --no-deps SERVICE`): a redeploy would update the others too.
            self._scale(services, 1)
            return
        self.render(plan, config, image=image, services=services if targeted else None)
        uid, gid = (int(part) for part in cr.container_user().split(":"))
        binds = {name: {"volumes": [m for m in spec.get("volumes", []) if m["type"] == "bind"]}
                 for name, spec in self._planned().items()}
        cr.prepare_mounts(self.layout, {"services": binds}, uid, gid)  # on this node; other nodes: see docs/swarm.md
        resolve = "always" if config.swarm.registry else "never"  # a local tag is in no registry
        self._docker("stack", "deploy", "--compose-file", str(self.compose_path), "--prune", "--detach=true",
                     "--resolve-image", resolve, self.project_name)

    def stop(self, services: list[str] | None = None) -> bool:
        """Scale the named services to 0, or remove the whole stack; wait until their containers here have exited."""
        was_running = self.is_running(services)
        if services:
            self._scale(services, 0)
        elif self._services():
            self._docker("stack", "rm", self.project_name)
        self._wait_gone(services)
        return was_running

    def _wait_gone(self, services: list[str] | None) -> None:
        """Until the containers here have exited (and, for the whole stack, its network is gone: a deploy right
        after `stack rm` would otherwise find it still being removed)."""
        deadline = time.monotonic() + self._record().get("stop_grace_seconds", 10) + STOP_SLACK_SECONDS
        label = {"label": f"{STACK_NAMESPACE}={self.project_name}"}
        while time.monotonic() < deadline:
            running = any(services is None or self._short_name(c["Labels"].get(SERVICE_NAME_LABEL, "")) in services
                          for c in self._task_containers())
            if not running and (services is not None or not self.client.api.networks(filters=label)):
                return
            time.sleep(0.5)
        raise ProcessFailedError(f"stack {self.project_name}: containers still running {STOP_SLACK_SECONDS}s after the stop grace period")

    def restart(self, services: list[str] | None = None) -> None:
        """A new task for each service (`docker service update --force`: the old task, and so its logs, stay in the history).

        The spec is sent back as the engine holds it, only ForceUpdate moved (which `stack deploy` keeps), so a later
        deploy of the same stack file replaces nothing."""
        for service in self._services():
            if services is None or self._short(service) in services:
                spec = service["Spec"]
                template = {**spec["TaskTemplate"], "ForceUpdate": int(spec["TaskTemplate"].get("ForceUpdate", 0)) + 1}
                self.client.api.update_service(
                    service["ID"], service["Version"]["Index"], task_template=template, name=spec["Name"],
                    labels=spec.get("Labels"), mode=spec.get("Mode"), update_config=spec.get("UpdateConfig"),
                    rollback_config=spec.get("RollbackConfig"), endpoint_spec=spec.get("EndpointSpec"))

    def _scale(self, services: list[str], replicas: int) -> None:
        for service in self._services():
            # Only on a change: a scale to the current count still rewrites the spec, and Swarm replaces the task.
            if self._short(service) in services and _replicas_of(service) != replicas:
                self.client.services.get(service["ID"]).scale(replicas)

    # --- reading ----------------------------------------------------------------------------------
    def _services(self) -> list[dict[str, Any]]:
        """This stack's services (by the stack's namespace and our project label)."""
        from docker.errors import APIError

        try:
            return self.client.api.services(filters={"label": [f"{STACK_NAMESPACE}={self.project_name}",
                                                                f"{cr.PROJECT_LABEL}={self.project_name}"]})
        except APIError as exc:
            if exc.status_code == 503:  # the engine left the swarm, or is a worker
                topology.require_manager(self.client)
            raise

    def _task_containers(self) -> list[dict[str, Any]]:
        """This stack's task containers on this node, running or not."""
        return self.client.api.containers(all=False, filters={"label": [f"{STACK_NAMESPACE}={self.project_name}",
                                                                         f"{cr.PROJECT_LABEL}={self.project_name}"]})

    def _short_name(self, full: str) -> str:
        return full.removeprefix(f"{self.project_name}_")

    def _short(self, service: dict[str, Any]) -> str:
        return self._short_name(service["Spec"]["Name"])

    def is_running(self, services: list[str] | None = None) -> bool:
        return any(_replicas_of(s) > 0 and (services is None or self._short(s) in services) for s in self._services())

    def status(self) -> list[ServiceStatus]:
        planned = self._planned()
        engine = {self._short(s): s for s in self._services()}
        rows = []
        for name, spec in planned.items():
            row = planned_row(name, spec)
            service = engine.get(name)
            if service is not None and _replicas_of(service) > 0:
                tasks = self.client.api.tasks(filters={"service": service["ID"]})
                _fill_from_tasks(row, tasks, _max_attempts(service))
                row.pid = self._local_pid(row.detail.get("container")) if row.state == "running" else None
            rows.append(row)
        return rows

    def _local_pid(self, container_id: str | None) -> int | None:
        """The task container's main pid when it runs on this node (a task on another node has none here)."""
        from docker.errors import NotFound

        if not container_id:
            return None
        try:
            return self.client.api.inspect_container(container_id)["State"].get("Pid") or None
        except NotFound:  # the task runs on another node
            return None

    def logs(self, services: list[str] | None, follow: bool = False, tail: int | None = None, since: str | None = None) -> Iterator[LogLine]:
        """The services' logs through the manager (`docker service logs`): every node's tasks, across restarts."""
        wanted = [n for n in self._planned() if services is None or n in services]
        start: dict[str, Any] = {"tail": tail if tail is not None else "all"}
        if since is not None:
            start["since"] = _since_value(since)
        last: dict[str, float | None] = dict.fromkeys(wanted)
        while True:
            by_name = {self._short(s): s for s in self._services()}
            for name in wanted:
                service = by_name.get(name)
                if service is None:
                    continue
                seen = last[name]
                if seen is None:
                    lines = sorted(self._read_service_logs(name, service["ID"], start), key=lambda line: line.timestamp or "")
                    lines = lines[-tail:] if tail else lines if tail is None else []  # the engine's tail counts per task
                else:
                    lines = list(self._read_service_logs(name, service["ID"], {"since": seen}))
                for line in lines:
                    stamp = iso_epoch(line.timestamp)
                    if seen is not None and stamp is not None and stamp <= seen:
                        continue  # seen in the previous poll
                    seen = stamp if stamp is not None else seen
                    yield line
                last[name] = seen if seen is not None or not follow else time.time()
            if not follow:
                return
            # Polled, not a following stream: the engine's stream does not pick up a task that replaces the one it follows.
            time.sleep(FOLLOW_POLL_SECONDS)

    def _read_service_logs(self, name: str, service_id: str, window: dict[str, Any]) -> Iterator[LogLine]:
        pending = b""
        chunks = self.client.api.service_logs(service_id, stdout=True, stderr=True, timestamps=True, follow=False, is_tty=False, **window)
        for chunk in chunks:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                yield _log_line(name, raw)
        if pending:
            yield _log_line(name, pending)

    # --- cleanup ----------------------------------------------------------------------------------
    def leftovers(self) -> list[tuple[str, str, str]]:
        """(kind, id, name) of this project's services, configs, secrets and networks the stack file no longer names.

        Only objects carrying this project's label are considered; with the stack stopped, all of them."""
        label = {"label": f"{cr.PROJECT_LABEL}={self.project_name}"}
        deployed = self.is_running()
        stack = self._stack_document() if deployed else {}
        planned = {f"{self.project_name}_{name}" for name in stack.get("services", {})}
        in_use = {entry.get("name") for kind in ("configs", "secrets") for entry in (stack.get(kind) or {}).values()}
        found = [("service", s["ID"], s["Spec"]["Name"]) for s in self.client.api.services(filters=label)
                 if s["Spec"]["Name"] not in planned]
        found += [("config", c["ID"], c["Spec"]["Name"]) for c in self.client.api.configs(filters=label) if c["Spec"]["Name"] not in in_use]
        found += [("secret", s["ID"], s["Spec"]["Name"]) for s in self.client.api.secrets(filters=label) if s["Spec"]["Name"] not in in_use]
        if not deployed:
            found += [("network", n["Id"], n["Name"]) for n in self.client.api.networks(filters=label)]
        return found

    def _stack_document(self) -> dict[str, Any]:
        try:
            return yaml.safe_load(self.compose_path.read_text()) or {}
        except OSError:
            return {}

    def _planned(self) -> dict[str, dict[str, Any]]:
        return self._stack_document().get("services", {})

    def cleanup(self, dry_run: bool) -> list[str]:
        removed = []
        remove = {"service": self.client.api.remove_service, "config": self.client.api.remove_config,
                  "secret": self.client.api.remove_secret, "network": self.client.api.remove_network}
        for kind, ident, name in self.leftovers():
            removed.append(f"{kind} {name}")
            if not dry_run:
                remove[kind](ident)
        return removed

    def _write_record(self, image: str, settings) -> None:
        super()._write_record(image, settings)
        record = self._record() | {"stack_file": str(self.compose_path), "stop_grace_seconds": settings.stop_grace_seconds}
        self.record_path.write_text(json.dumps(record, indent=2) + "\n")


def _replicas_of(service: dict[str, Any]) -> int:
    return int(((service.get("Spec", {}).get("Mode") or {}).get("Replicated") or {}).get("Replicas", 0))


def _max_attempts(service: dict[str, Any]) -> int:
    policy = service["Spec"].get("TaskTemplate", {}).get("RestartPolicy") or {}
    return int(policy.get("MaxAttempts") or 0)


def _fill_from_tasks(row: ServiceStatus, tasks: list[dict[str, Any]], max_attempts: int) -> None:
    """State and health from the service's tasks: a task with a health check stays `starting` until healthy."""
    tasks = sorted(tasks, key=lambda t: t.get("CreatedAt", ""), reverse=True)
    if not tasks:
        row.state, row.health = "restarting", "unhealthy"
        return
    current = next((t for t in tasks if t.get("DesiredState") == "running"), tasks[0])
    status = current.get("Status", {})
    state = status.get("State", "")
    row.restarts = max(0, len(tasks) - 1)
    row.started_at = status.get("Timestamp")
    row.detail = {"task": current.get("ID"), "node": current.get("NodeID"), "error": status.get("Err"),
                  "container": (status.get("ContainerStatus") or {}).get("ContainerID"), "task_state": state}
    if state == "running":
        row.state, row.health = "running", "healthy"
    elif state in ACTIVE_TASK_STATES:
        row.state, row.health = "running", "starting"
    elif max_attempts and row.restarts + 1 >= max_attempts and current.get("DesiredState") != "running":
        row.state, row.health = "crashloop", "unhealthy"
    else:
        row.state, row.health = "restarting", "unhealthy"
