"""The local runtime: the plan's services as processes under one detached supervisor (supervisor.py).

`render` writes `state/supervisor-spec.json` (what each service runs); `start`/`stop`/`restart` change
the desired state in it and tell the supervisor (SIGHUP), launching it first when none runs.
`state/supervisor.json`, written by the supervisor, is what `status` reads; a pid in it is trusted
only with its start time and command line (processes.py) and while the supervisor lock is held.

Services (from `plan_services(plan, None)`): `sensor-<city-slug>` runs
`python -m sensor_manager simulate --sensor-id <id> …` (all of the city's sensors in one process) and
`uploader-<city-slug>` runs `python -m uploader --continuous` over `data/<City>`.
"""
from __future__ import annotations

import heapq
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import psutil

from fleetcore.atomicfiles import write_atomic
from fleetcore.errors import ProcessFailedError
from fleetcore.naming import city_service_slug
from fleetcore.statusfiles import StatusDocument, read_json_object
from sensor_manager.config import Config
from sensor_manager.layout import ProjectLayout
from sensor_manager.live.settings import uploader_settings_document, uploader_settings_path
from sensor_manager.plan import FleetPlan, load_plan
from sensor_manager.runtimes import logfiles
from sensor_manager.runtimes import supervisor as sv
from sensor_manager.runtimes.base import LogLine, RuntimeFault, Service, ServiceState, ServiceStatus, plan_services
from sensor_manager.runtimes.health import read_service_status, service_health
from sensor_manager.runtimes.logfiles import open_followers, read_lines
from sensor_manager.runtimes.processes import ProcessRecord, project_processes, terminate_all, wait_gone
from sensor_manager.simulator.live import SETTINGS_FILE, settings_bytes

ACK_TIMEOUT_SECONDS = 20.0
POLL_SECONDS = 0.05
# A live supervisor rewrites its state every STATE_REFRESH_SECONDS; this much silence is a fault.
HEARTBEAT_STALE_SECONDS = 5 * sv.STATE_REFRESH_SECONDS
NEARLY_FULL_BYTES = 1024 * 1024
# Starts the supervisor in a new session and returns at once, so the supervisor is re-parented
# (double fork): it survives the CLI and the terminal and is never left a zombie of the CLI.
LAUNCHER = (
    "import subprocess, sys\n"
    "log = open(sys.argv[1], 'ab')\n"
    "p = subprocess.Popen(sys.argv[2:], start_new_session=True, stdin=subprocess.DEVNULL,"
    " stdout=log, stderr=subprocess.STDOUT, close_fds=True)\n"
    "print(p.pid)\n"
)

log = logging.getLogger(__name__)


def sensor_argv(layout: ProjectLayout, config: Config, service: Service) -> list[str]:
    argv = [sys.executable, "-m", "sensor_manager", "--project-dir", str(layout.root)]
    if config.source_path:
        argv += ["--config", config.source_path]
    # The service's slice of the stored plan by id (never --cities: the config may lack a city the plan
    # holds); the effective rates (flags given to `start` included) so the child runs what was asked.
    argv += ["simulate", "--rate", repr(config.simulation.readings_per_second),
             "--anomaly-probability", repr(config.anomalies.probability), "--live-dir", str(layout.state)]
    for sensor_id in service.sensor_ids:
        argv += ["--sensor-id", sensor_id]
    return argv


def write_uploader_settings(layout: ProjectLayout, config: Config) -> Path:
    """The resolved `uploader:` settings a local uploader reads (owner-only: it may hold a sink key)."""
    path = uploader_settings_path(layout)
    write_atomic(path, json.dumps(uploader_settings_document(config), indent=2) + "\n", mode=0o600)
    return path


def write_simulator_settings(layout: ProjectLayout, config: Config) -> Path:
    """The reloadable settings the local simulators poll (simulator/live.py), as resolved at `start`."""
    path = layout.state / SETTINGS_FILE
    write_atomic(path, settings_bytes(config))
    return path


def uploader_argv(layout: ProjectLayout, config: Config, safe_city: str) -> list[str]:
    return [
        sys.executable, "-m", "uploader", "--sqlite", str(layout.data / safe_city), "--project-dir", str(layout.root),
        "--uploader-id", city_service_slug(safe_city), "--continuous", "--interval", repr(config.uploader.interval_seconds),
        "--config", str(uploader_settings_path(layout)),
    ]


def _free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


class LocalRuntime:
    name = "local"

    def __init__(self, layout: ProjectLayout):
        self.layout = layout

    # --- spec and supervisor state -------------------------------------------------------------
    def _read_spec(self) -> dict[str, Any]:
        spec = read_json_object(sv.spec_path(self.layout)) or {}
        spec.setdefault("schema_version", sv.SCHEMA_VERSION)
        spec.setdefault("generation", 0)
        spec.setdefault("services", [])
        spec.setdefault("desired", {})
        spec.setdefault("restart_tokens", {})
        return spec

    def _read_state(self) -> sv.SupervisorState:
        return sv.SupervisorState.read(sv.state_path(self.layout))

    def supervisor(self) -> ProcessRecord | None:
        """The live supervisor of this project, verified by start time, command line and its lock."""
        record = ProcessRecord.from_dict(self._read_state().supervisor)
        if record is None or not record.is_alive():
            return None
        return record if sv.is_lock_held(self.layout) else None

    def is_running(self) -> bool:
        return self.supervisor() is not None

    # --- Runtime -------------------------------------------------------------------------------
    def services(self, plan: FleetPlan) -> list[Service]:
        return plan_services(plan, None)

    def render(self, plan: FleetPlan, config: Config) -> list[str]:
        """Write the services of `plan` into the supervisor spec (others already there are kept)."""
        self.layout.ensure_state()
        spec = self._read_spec()
        write_uploader_settings(self.layout, config)
        write_simulator_settings(self.layout, config)
        spec["config_file"] = config.source_path  # the supervisor watches it (runtimes/config_watch.py)
        rendered = {}
        for service in self.services(plan):
            # The uploader watches data/<City>; create it so it need not wait for the first sensor DB.
            (self.layout.data / service.safe_city).mkdir(parents=True, exist_ok=True)
            if service.role == "sensor":
                argv = sensor_argv(self.layout, config, service)
            else:
                argv = uploader_argv(self.layout, config, service.safe_city)
            rendered[service.name] = {
                "name": service.name, "role": service.role, "city": service.safe_city,
                "sensors": service.sensor_ids, "argv": argv, "env": {},
                "status_file": str(self.layout.status_dir / f"{service.name}.json"),  # the supervisor restarts it when it hangs
            }
        kept = [s for s in spec["services"] if s["name"] not in rendered]
        spec["services"] = kept + list(rendered.values())
        sv.write_json_atomic(sv.spec_path(self.layout), spec)
        return [str(sv.spec_path(self.layout))]

    def start(self, plan: FleetPlan, config: Config, services: list[str] | None = None) -> None:
        names = services if services is not None else [s.name for s in self.services(plan)]
        spec = self._read_spec()
        if not self.is_running():  # a fresh supervisor runs exactly what was asked, whatever a dead one wanted
            spec["desired"] = {}
        for name in names:
            spec["desired"][name] = "running"
        self._deliver(spec)

    def stop(self, services: list[str] | None = None) -> bool:
        spec = self._read_spec()
        for name in services if services is not None else [s["name"] for s in spec["services"]]:
            spec["desired"][name] = "stopped"
        record = self.supervisor()
        if services is None:
            sv.write_json_atomic(sv.spec_path(self.layout), spec)
            was_running = record is not None and self._any_running()
            self._stop_supervisor(record)
            return was_running or bool(self._stop_orphans())
        if record is None:
            return False
        was_running = self._any_running(services)
        generation = self._deliver(spec)
        self._wait_for(lambda state: all(self._entry(state, n).state == "stopped" for n in services),
                       f"services {', '.join(services)} to stop", generation, timeout=sv.STOP_GRACE_SECONDS * 2 + 5)
        return was_running

    def restart(self, services: list[str] | None = None) -> None:
        spec = self._read_spec()
        names = services if services is not None else [s["name"] for s in spec["services"]]
        state = self._read_state() if self.is_running() else sv.SupervisorState()
        before = {n: self._entry(state, n).pid for n in names}
        for name in names:
            spec["desired"][name] = "running"
            spec["restart_tokens"][name] = int(spec["restart_tokens"].get(name, 0)) + 1
        generation = self._deliver(spec)
        self._wait_for(
            lambda st: all(self._entry(st, n).pid not in (None, before[n]) or self._entry(st, n).state in ("restarting", "crashloop", "stopped") for n in names),
            "services to restart", generation, timeout=sv.STOP_GRACE_SECONDS * 2 + 5,
        )

    def wait_healthy(self, services: list[str] | None, timeout_seconds: float) -> list[str]:
        deadline = time.monotonic() + timeout_seconds
        while True:
            statuses = [s for s in self.status() if services is None or s.name in services]
            unknown = sorted(set(services or ()) - {s.name for s in statuses})
            not_ready = [s for s in statuses if s.health != "healthy"]
            if not not_ready and not unknown:
                return []
            hopeless = [s for s in not_ready if s.state in ("crashloop", "stopped")]
            if hopeless or unknown or time.monotonic() >= deadline:
                return [f"{s.name} ({s.state}, {s.health})" for s in not_ready] + [f"{n} (not planned)" for n in unknown]
            time.sleep(0.5)

    def status(self) -> list[ServiceStatus]:
        plan = load_plan(self.layout)
        if plan is None:
            return []
        running = self.is_running()
        state = self._read_state() if running else sv.SupervisorState()
        names = {safe: sensors[0].city for safe, sensors in plan.by_city().items()}
        now = time.time()
        result = []
        for service in self.services(plan):
            entry = self._entry(state, service.name)
            current: ServiceState = entry.state if running else "stopped"
            pid = entry.pid if current in ("running", "crashloop") else None
            document = read_service_status(service.role, self.layout.status_dir / f"{service.name}.json")
            health = service_health(service.role, document, service.sensor_ids, pid, entry.create_time, now)
            result.append(ServiceStatus(
                name=service.name, role=service.role, city=names.get(service.safe_city, service.safe_city),
                sensors=service.sensor_ids, state=current, health=health, restarts=entry.restarts,
                pid=pid, started_at=entry.started_at if pid else None,
                detail={"exit_code": entry.exit_code, "status": document},
            ))
        return result

    def fault(self) -> RuntimeFault | None:
        """The supervisor died while services should run, or it cannot write its state (a full disk)."""
        state = self._read_state()
        record = ProcessRecord.from_dict(state.supervisor)
        if record is None:  # never started, or stopped cleanly
            return None
        if self.supervisor() is None:
            wanted = [n for n, d in self._read_spec()["desired"].items() if d == "running"]
            if not wanted:
                return None
            return RuntimeFault(
                f"supervisor died: pid {record.pid}, last seen {state.updated_at or '?'}; its {len(wanted)} services are down",
                f"`start` brings them back; {self.layout.logs / 'supervisor.log'} tells how it ended")
        full = RuntimeFault("", "free space on that disk; the services resume by themselves")
        if state.write_error:
            return replace(full, problem=f"the supervisor cannot write: {state.write_error}")
        silent = time.time() - state.updated_at_epoch
        if silent > HEARTBEAT_STALE_SECONDS:
            problem = f"the supervisor (pid {record.pid}) has not updated {sv.state_path(self.layout)} for {silent:.0f} s"
            free = _free_bytes(self.layout.state)
            if free is not None and free < NEARLY_FULL_BYTES:
                return replace(full, problem=f"{problem}: the disk holding {self.layout.state} is full")
            return RuntimeFault(f"{problem}: it may be stuck", "`stop`, then `start`")
        return None

    def log_path(self, service: str) -> Path:
        return self.layout.logs / f"{service}.log"

    def logs(self, services: list[str] | None, follow: bool = False, tail: int | None = None, since: str | None = None) -> Iterator[LogLine]:
        if services is None:
            plan = load_plan(self.layout)
            services = [s.name for s in self.services(plan)] if plan else []
        paths = {name: self.log_path(name) for name in services}
        followers = open_followers(paths) if follow else {}
        history = [
            [(line.timestamp or "", index, name, line) for index, line in enumerate(read_lines(path, tail, since))]
            for name, path in paths.items()
        ]
        for _, _, name, line in heapq.merge(*history):
            yield LogLine(name, line.text, line.timestamp)
        if follow:
            for name, line in logfiles.follow(followers):
                yield LogLine(name, line.text, line.timestamp)

    def cleanup(self, dry_run: bool) -> list[str]:
        """Stale supervisor state, unheld lock files, stale status and temp files, orphaned processes."""
        found: list[str] = []
        record = self.supervisor()
        for process in self._orphans(record):
            found.append(f"orphaned process pid {process.pid} ({' '.join(process.cmdline()[:6])})")
            if not dry_run:
                terminate_all([process], sv.STOP_GRACE_SECONDS)
        if record is None:
            stale = ProcessRecord.from_dict(self._read_state().supervisor)
            if stale is not None:
                found.append(f"stale supervisor record {sv.state_path(self.layout)} (pid {stale.pid} is not our supervisor)")
                if not dry_run:
                    sv.state_path(self.layout).unlink(missing_ok=True)
            found += self._stale_files(dry_run)
        return found

    # --- helpers of the above -------------------------------------------------------------------
    @staticmethod
    def _entry(state: sv.SupervisorState, name: str) -> sv.ServiceEntry:
        return state.services.get(name) or sv.ServiceEntry()

    def _any_running(self, names: list[str] | None = None) -> bool:
        entries = self._read_state().services
        return any(e.state != "stopped" for n, e in entries.items() if names is None or n in names)

    def _deliver(self, spec: dict[str, Any]) -> int:
        """Write the spec with a new generation and make the supervisor act on it (launching it if needed)."""
        spec["generation"] = int(spec.get("generation", 0)) + 1
        sv.write_json_atomic(sv.spec_path(self.layout), spec)
        record = self.supervisor()
        if record is not None:
            os.kill(record.pid, signal.SIGHUP)
        else:
            self._launch()
        self._wait_for(lambda state: True, "the supervisor to take the new spec", spec["generation"])
        return spec["generation"]

    def _launch(self) -> None:
        # Services a dead supervisor left behind would otherwise run twice.
        terminate_all(self._orphans(None), sv.STOP_GRACE_SECONDS)
        self.layout.ensure_state()
        command = [sys.executable, "-m", "sensor_manager.runtimes.supervisor", "--project-dir", str(self.layout.root)]
        log_file = self.layout.logs / "supervisor.log"
        log.debug("run: %s (output: %s)", shlex.join(command), log_file)
        result = subprocess.run([sys.executable, "-c", LAUNCHER, str(log_file), *command], capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise ProcessFailedError(f"could not launch the supervisor: {result.stderr.strip()[-500:]}")

    def _wait_for(self, done, what: str, generation: int, timeout: float = ACK_TIMEOUT_SECONDS) -> sv.SupervisorState:
        deadline = time.monotonic() + timeout
        while True:
            state = self._read_state()
            alive = state.supervisor is not None
            if alive and state.generation_seen >= generation and done(state):
                return state
            if time.monotonic() >= deadline:
                tail = "\n".join(line.text for line in read_lines(self.layout.logs / "supervisor.log", tail=5))
                raise ProcessFailedError(f"timed out after {timeout:.0f} s waiting for {what}; state/logs/supervisor.log ends:\n{tail}")
            time.sleep(POLL_SECONDS)

    def _stop_supervisor(self, record: ProcessRecord | None) -> None:
        """SIGTERM the supervisor (it stops every service gracefully), wait, then make sure nothing is left."""
        children = [ProcessRecord.from_dict(e.model_dump()) for e in self._read_state().services.values()]
        if record is not None and (process := record.process()) is not None:
            process.terminate()
            if wait_gone([process], sv.STOP_GRACE_SECONDS * 2 + 5):
                process.kill()
                wait_gone([process], 5)
        leftovers = [p for c in children if c is not None and (p := c.process()) is not None]
        terminate_all(leftovers, sv.STOP_GRACE_SECONDS)

    def _orphans(self, record: ProcessRecord | None) -> list[psutil.Process]:
        """Processes proved to be this project's (by environment) that no live supervisor owns."""
        root = str(self.layout.root)
        orphans = []
        for process in project_processes(root):
            try:
                if record is not None and (process.pid == record.pid or process.ppid() == record.pid):
                    continue
            except psutil.NoSuchProcess:
                continue
            orphans.append(process)
        return orphans

    def _stop_orphans(self) -> list[psutil.Process]:
        orphans = self._orphans(self.supervisor())
        terminate_all(orphans, sv.STOP_GRACE_SECONDS)
        return orphans

    def _stale_files(self, dry_run: bool) -> list[str]:
        found = []
        lock = sv.lock_path(self.layout)
        if lock.exists() and not sv.is_lock_held(self.layout):
            found.append(f"unheld lock file {lock}")
            if not dry_run:
                lock.unlink(missing_ok=True)
        plan = load_plan(self.layout)
        # A planned service's file is its last known state (status and monitor show it), never a leftover.
        planned = {service.name for service in plan_services(plan, None)} if plan else set()
        for path in sorted(self.layout.status_dir.glob("*.json")) if self.layout.status_dir.is_dir() else []:
            if path.stem in planned:
                continue
            document = StatusDocument.read(path)
            if document is None or (document.is_stale() and not psutil.pid_exists(document.pid or -1)):
                found.append(f"stale status file {path}")
                if not dry_run:
                    path.unlink(missing_ok=True)
        for folder in (self.layout.state, self.layout.status_dir):
            for path in sorted(folder.glob(".*.tmp")) if folder.is_dir() else []:
                found.append(f"leftover temp file {path}")
                if not dry_run:
                    path.unlink(missing_ok=True)
        return found
