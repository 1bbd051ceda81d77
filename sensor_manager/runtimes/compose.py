"""The docker runtime: the plan as a Compose v2 project, driven by `docker compose -p NAME -f FILE`.

Compose does what changes containers (up, down, targeted start/stop/restart); the docker SDK reads
them (status, health, restart counts, logs that keep following across restarts). Every container,
network and volume it touches carries this project's label, so nothing else on the host is ever
stopped or removed: `cleanup` removes only labelled leftovers compose no longer knows.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from fleetcore.errors import ProcessFailedError, UsageError
from fleetcore.timestamps import iso_epoch
from sensor_manager.layout import ProjectLayout
from sensor_manager.plan import FleetPlan
from sensor_manager.runtimes import compose_render as cr
from sensor_manager.runtimes import image as images
from sensor_manager.runtimes.base import LogLine, Service, ServiceStatus
from sensor_manager.runtimes.compose_settings import DockerSettings, docker_settings, resolve_base_image
from sensor_manager.runtimes.engine import compose_command, docker_client, engine_info
from sensor_manager.runtimes.image import ImageOptions

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_ONEOFF = "com.docker.compose.oneoff"
POLL_SECONDS = 0.5


def _stderr(line: str) -> None:
    """Default progress sink: build output and compose progress go to stderr, never stdout."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def planned_row(name: str, spec: dict[str, Any]) -> ServiceStatus:
    """A planned service's status row as the stack file describes it, before the engine says more."""
    labels = spec.get("labels", {})
    sensors = [s for s in labels.get(cr.SENSOR_ID_LABEL, "").split(",") if s]
    return ServiceStatus(name, labels.get(cr.ROLE_LABEL, "sensor"), labels.get(cr.CITY_LABEL, ""), sensors, "stopped", "unknown")


class ComposeRuntime:
    name = "docker"

    def __init__(
        self,
        layout: ProjectLayout,
        *,
        project_name: str | None = None,
        image: ImageOptions | None = None,
        progress: Progress | None = None,
        settings: DockerSettings | None = None,
    ):
        self.layout = layout
        self.settings_override = settings  # wins over the config's `docker:` section (tests, embedding)
        self.image_options = image or ImageOptions()
        self.progress: Progress = progress or _stderr
        self._project_name = cr.validate_project_name(project_name) if project_name else None
        self._client = None

    # --- identity and files ---------------------------------------------------------------------
    @property
    def record_path(self) -> Path:
        return self.layout.state / "compose" / "project.json"

    def _record(self) -> dict[str, Any]:
        try:
            return json.loads(self.record_path.read_text())
        except (OSError, ValueError):
            return {}

    @property
    def recorded_image(self) -> str | None:
        """The image tag the last render put into the compose file."""
        return self._record().get("image")

    @property
    def project_name(self) -> str:
        """--project-name, else the name the last render used, else sm-<dir slug>-<path hash>."""
        return self._project_name or self._record().get("project_name") or cr.default_project_name(self.layout)

    @property
    def compose_path(self) -> Path:
        return cr.compose_file(self.layout)

    @property
    def client(self):
        if self._client is None:
            self._client = docker_client()
        return self._client

    def services(self, plan: FleetPlan, config=None) -> list[Service]:
        settings = self._settings(config) if config is not None else self._recorded_settings()
        return cr.stack_services(plan, settings)

    def _settings(self, config) -> DockerSettings:
        return self.settings_override or docker_settings(config)

    def _recorded_settings(self) -> DockerSettings:
        if self.settings_override:
            return self.settings_override
        return DockerSettings(sensors_per_container=self._record().get("sensors_per_container", 1))

    def _compose(self, *args: str, capture: bool = False) -> subprocess.CompletedProcess:
        if not self.compose_path.is_file():
            raise UsageError(f"{self.compose_path}: no compose file; run `start` (or `compose`) first")
        command = [*compose_command(), "-p", self.project_name, "-f", str(self.compose_path), *args]
        log.debug("run: %s", shlex.join(command))
        result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if not capture:
            for line in (result.stderr or "").splitlines():
                if line.strip():
                    self.progress(line)
        if result.returncode != 0:
            detail = " ".join((result.stderr or result.stdout or "").strip().splitlines()[-3:])
            raise ProcessFailedError(f"docker compose {args[0]} failed (exit {result.returncode}): {detail[:800]}")
        return result

    # --- image ------------------------------------------------------------------------------------
    def image_tag(self, config) -> str:
        """The tag the stack runs (content tag, or --tag); computed without building."""
        settings = self._settings(config)
        base = resolve_base_image(settings, self.image_options.base_image)
        return images.plan_image(self.client, self.layout, settings, base, self.image_options.tag, self.progress).tag

    def ensure_image(self, config) -> str:
        """The image tag to run, building it (progress streamed) when it is missing and building is allowed."""
        settings = self._settings(config)
        base = resolve_base_image(settings, self.image_options.base_image)
        tag = self.image_tag(config)
        if images.image_exists(self.client, tag):
            return tag
        if not self.image_options.build:
            raise UsageError(f"image {tag} is not built and --no-rebuild was given; run `build` first or drop --no-rebuild")
        return images.build_image(
            self.client, self.layout, settings, base_image=base, tag=self.image_options.tag, progress=self.progress
        ).tag

    # --- render -----------------------------------------------------------------------------------
    def stack(self, plan: FleetPlan, config, image: str, *, secrets: tuple[str, ...] = ()) -> tuple[dict[str, Any], cr.StackInputs]:
        settings = self._settings(config)
        memory_limit = True
        try:
            memory_limit = engine_info(self.client).memory_limit
        except Exception:  # rendering without an engine keeps the limit; the engine enforces or ignores it
            pass
        if not memory_limit:
            self.progress("Warning: this engine cannot enforce memory limits; mem_limit is left out of the stack.")
        inputs = cr.StackInputs(self.layout, self.project_name, image, cr.container_user(), settings, secrets, memory_limit)
        return cr.render_stack(plan, config, inputs), inputs

    def render(self, plan: FleetPlan, config, *, image: str | None = None, output: Path | None = None) -> list[str]:
        """Write the role configs, the secret files and the compose file (and `output`); return the paths."""
        image = image or self.image_tag(config)
        uid, gid = (int(part) for part in cr.container_user().split(":"))
        self.layout.ensure_state()
        secret_names = tuple(cr.write_secrets(self.layout, cr.collect_secrets(config, os.environ), uid, gid))
        document, _ = self.stack(plan, config, image, secrets=secret_names)
        written = [str(p) for p in cr.write_role_configs(self.layout, config, plan)]
        written.append(str(cr.write_stack(self.compose_path, document)))
        if output is not None and Path(output).resolve() != self.compose_path.resolve():
            written.append(str(cr.write_stack(Path(output), document)))
        self._write_record(image, self._settings(config))
        return written

    def _write_record(self, image: str, settings: DockerSettings) -> None:
        record = {
            "schema_version": 1, "project_name": self.project_name, "image": image,
            "compose_file": str(self.compose_path), "sensors_per_container": settings.sensors_per_container,
            "restart_max_attempts": settings.restart_max_attempts,
        }
        self.record_path.parent.mkdir(parents=True, exist_ok=True)
        self.record_path.write_text(json.dumps(record, indent=2) + "\n")

    # --- lifecycle ----------------------------------------------------------------------------------
    def start(self, plan: FleetPlan, config, services: list[str] | None = None) -> None:
        """Build the image if needed, render, create and chown mount sources, then `compose up -d`."""
        image = self.ensure_image(config)
        self.render(plan, config, image=image)
        document = yaml.safe_load(self.compose_path.read_text())
        uid, gid = (int(part) for part in cr.container_user().split(":"))
        cr.prepare_mounts(self.layout, document, uid, gid)
        self._compose("up", "--detach", "--remove-orphans", "--no-build", "--pull", "never",
                      *(["--no-deps", *services] if services else []))

    def stop(self, services: list[str] | None = None) -> bool:
        """Stop gracefully (SIGTERM, then SIGKILL after stop_grace_period); False when nothing ran."""
        was_running = self.is_running(services)
        if services:
            if was_running:
                self._compose("stop", *services)
        elif self._containers() and self.compose_path.is_file():
            # Also removes exited (crashlooped) containers; networks: none were created.
            self._compose("down", "--remove-orphans")
        return was_running

    def restart(self, services: list[str] | None = None) -> None:
        self._compose("restart", *(services or []))

    def wait_healthy(self, services: list[str] | None, timeout_seconds: float) -> list[str]:
        """Poll until every service's container is healthy; return those that are not at the timeout."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            rows = [s for s in self.status() if (services is None or s.name in services) and s.health != "healthy"]
            pending = [s.name for s in rows]
            # A crashloop is final (its restart budget is spent): waiting longer cannot make it healthy.
            if not pending or time.monotonic() >= deadline or all(s.state == "crashloop" for s in rows):
                return pending
            time.sleep(min(2.0, max(0.1, deadline - time.monotonic())))

    # --- reading ----------------------------------------------------------------------------------
    def _containers(self, all_: bool = True) -> list[dict[str, Any]]:
        """This project's containers (by compose's project label and ours), as the list API returns them."""
        return self.client.api.containers(
            all=all_, filters={"label": [f"{COMPOSE_PROJECT}={self.project_name}", f"{cr.PROJECT_LABEL}={self.project_name}"]}
        )

    def _planned(self) -> dict[str, dict[str, Any]]:
        """Services of the rendered compose file (the stack as last rendered)."""
        try:
            return yaml.safe_load(self.compose_path.read_text()).get("services", {})
        except (OSError, AttributeError):
            return {}

    def is_running(self, services: list[str] | None = None) -> bool:
        for container in self._containers(all_=False):
            if services is None or container["Labels"].get(COMPOSE_SERVICE) in services:
                return True
        return False

    def fault(self) -> None:
        return None  # the engine supervises the containers; an engine that is down is EngineUnavailableError

    def status(self) -> list[ServiceStatus]:
        planned = self._planned()
        max_attempts = int(self._record().get("restart_max_attempts", 5))
        by_service: dict[str, dict[str, Any]] = {}
        for container in self._containers():
            if container["Labels"].get(COMPOSE_ONEOFF) == "True":
                continue
            by_service.setdefault(container["Labels"].get(COMPOSE_SERVICE, ""), container)
        rows = []
        for name, spec in planned.items():
            row = planned_row(name, spec)
            running = by_service.get(name)
            if running is not None:
                self._fill_status(row, self.client.api.inspect_container(running["Id"]), max_attempts)
            rows.append(row)
        return rows

    @staticmethod
    def _fill_status(row: ServiceStatus, details: dict[str, Any], max_attempts: int) -> None:
        state = details.get("State", {})
        row.restarts = int(details.get("RestartCount", 0))
        row.detail = {"container": details.get("Name", "").lstrip("/"), "exit_code": state.get("ExitCode"), "image": details.get("Config", {}).get("Image")}
        health = (state.get("Health") or {}).get("Status")
        if state.get("Running") and not state.get("Restarting"):
            row.state, row.health = "running", health or "unknown"
            row.pid, row.started_at = state.get("Pid") or None, state.get("StartedAt")
        elif state.get("Restarting"):
            row.state, row.health = "restarting", "unhealthy"
        elif state.get("ExitCode", 0) != 0 and row.restarts >= max_attempts:
            row.state, row.health = "crashloop", "unhealthy"
        else:
            row.state, row.health = "stopped", "unknown"

    def logs(self, services: list[str] | None, follow: bool = False, tail: int | None = None, since: str | None = None) -> Iterator[LogLine]:
        names = [n for n in self._planned() if services is None or n in services]
        if not follow:
            for name in names:
                container = self._container_of(name)
                if container is not None:
                    yield from self._read_logs(name, container, tail=tail, since=since)
            return
        yield from self._follow(names, tail, since)

    def _container_of(self, service: str) -> dict[str, Any] | None:
        for container in self._containers():
            labels = container["Labels"]
            if labels.get(COMPOSE_SERVICE) == service and labels.get(COMPOSE_ONEOFF) != "True":
                return container
        return None

    def _read_logs(self, service: str, container: dict[str, Any], *, tail=None, since=None, follow=False) -> Iterator[LogLine]:
        kwargs: dict[str, Any] = {"stdout": True, "stderr": True, "timestamps": True, "stream": True, "follow": follow}
        kwargs["tail"] = tail if tail is not None else "all"
        if since is not None:
            kwargs["since"] = _since_value(since)
        pending = b""
        for chunk in self.client.api.logs(container["Id"], **kwargs):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                yield _log_line(service, raw)
        if pending:
            yield _log_line(service, pending)

    def _follow(self, names: list[str], tail: int | None, since: str | None) -> Iterator[LogLine]:
        """One thread per service; each re-attaches after a restart or recreate, from the last timestamp seen."""
        lines: queue.Queue[LogLine] = queue.Queue(maxsize=10_000)
        stop = threading.Event()

        def pump(name: str) -> None:
            last: float | None = None
            first = True
            while not stop.is_set():
                container = self._container_of(name)
                if container is None:
                    stop.wait(POLL_SECONDS * 4)
                    continue
                try:
                    start = since if first else None
                    for line in self._read_logs(name, container, tail=tail if first else None,
                                                since=last or start, follow=True):
                        if stop.is_set():
                            return
                        stamp = iso_epoch(line.timestamp)
                        if last is not None and stamp is not None and stamp <= last:
                            continue
                        last = stamp if stamp is not None else last
                        lines.put(line)
                except Exception:  # the container went away mid-stream; find its successor
                    pass
                first = False
                stop.wait(POLL_SECONDS)

        threads = [threading.Thread(target=pump, args=(name,), daemon=True) for name in names]
        for thread in threads:
            thread.start()
        try:
            while True:
                try:
                    yield lines.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    continue
        finally:
            stop.set()

    # --- cleanup ----------------------------------------------------------------------------------
    def leftovers(self) -> list[tuple[str, str, str]]:
        """(kind, id, name) of labelled containers, networks and volumes of this project that compose no longer knows."""
        planned = set(self._planned())
        found = []
        label = f"{cr.PROJECT_LABEL}={self.project_name}"
        for container in self.client.api.containers(all=True, filters={"label": label}):
            labels = container["Labels"]
            known = labels.get(COMPOSE_PROJECT) == self.project_name and labels.get(COMPOSE_SERVICE) in planned
            if not known or labels.get(COMPOSE_ONEOFF) == "True":
                found.append(("container", container["Id"], container["Names"][0].lstrip("/")))
        for network in self.client.api.networks(filters={"label": label}):
            found.append(("network", network["Id"], network["Name"]))
        for volume in (self.client.api.volumes(filters={"label": label}) or {}).get("Volumes") or []:
            found.append(("volume", volume["Name"], volume["Name"]))
        return found

    def cleanup(self, dry_run: bool) -> list[str]:
        removed = []
        for kind, ident, name in self.leftovers():
            removed.append(f"{kind} {name}")
            if dry_run:
                continue
            if kind == "container":
                self.client.api.remove_container(ident, force=True, v=True)
            elif kind == "network":
                self.client.api.remove_network(ident)
            else:
                self.client.api.remove_volume(ident, force=True)
        return removed


def _since_value(since: str | float):
    """`--since` as docker accepts it (epoch seconds), from the one grammar (sensor_manager.durations)."""
    if isinstance(since, (int, float)):
        return since
    from sensor_manager.durations import parse_since

    return parse_since(since, naive_is_local=True).timestamp()


def _log_line(service: str, raw: bytes) -> LogLine:
    text = raw.decode("utf-8", "replace").rstrip("\r")
    stamp, _, rest = text.partition(" ")
    if stamp[:4].isdigit() and "T" in stamp:
        return LogLine(service, rest, stamp)
    return LogLine(service, text, None)


@dataclass(frozen=True)
class ComposeResult:
    """What `compose` rendered: the stack text on a dry run, else the files written."""

    project_name: str
    image: str
    services: list[str]
    compose_file: Path | None = None  # None on a dry run
    output: Path | None = None  # --output, when it is another file than compose_file
    stack_text: str | None = None  # the rendered stack, on a dry run only


def compose_stack(
    layout: ProjectLayout,
    config,
    *,
    project_name: str | None = None,
    tag: str | None = None,
    base_image: str | None = None,
    replan: bool = False,
    dry_run: bool = False,
    output: Path | None = None,
    progress: Progress | None = None,
) -> ComposeResult:
    """`compose`: render the plan's compose stack to state/compose/ (and `output`); on `dry_run`, only render it."""
    from fleetcore.errors import EngineUnavailableError
    from sensor_manager.plan import resolve_plan

    images.validate_tag(tag)
    if project_name:
        cr.validate_project_name(project_name)
    fleet = resolve_plan(config, layout, persist=not dry_run, replan=replan)
    runtime = ComposeRuntime(layout, project_name=project_name, image=ImageOptions(tag=tag, base_image=base_image), progress=progress)
    try:
        image = f"{docker_settings(config).image_repository}:{tag}" if tag else runtime.image_tag(config)
    except EngineUnavailableError as exc:
        raise EngineUnavailableError(f"{exc}; the image tag hashes the base image, so without an engine pass --tag T") from None
    services = [service.name for service in runtime.services(fleet, config)]
    if dry_run:
        document, _ = runtime.stack(fleet, config, image, secrets=tuple(sorted(cr.collect_secrets(config, os.environ))))
        return ComposeResult(runtime.project_name, image, services, stack_text=cr.dump_stack(document))
    runtime.render(fleet, config, image=image, output=output)
    extra = output.resolve() if output and output.resolve() != runtime.compose_path else None
    return ComposeResult(runtime.project_name, image, services, compose_file=runtime.compose_path, output=extra)
