"""The local runtime's supervisor: one detached process per project that runs and watches the services.

It reads what to run from `state/supervisor-spec.json` (written by `LocalRuntime`: each service's
argv and environment, the desired state of each, restart tokens) and reports in `state/supervisor.json`
(its own process record, and per service: state, pid, start time, restarts, last exit). A CLI changes
the spec, sends SIGHUP, and waits until `generation_seen` reaches the spec's generation; SIGTERM stops
every service gracefully and ends the supervisor.

Children write to a pipe; the supervisor stamps each line and appends it to `state/logs/<service>.log`
(rotated). A child that exits non-zero (or by a signal) while it should run is restarted with
exponential backoff; after `CRASHLOOP_AFTER` consecutive exits within `QUICK_EXIT_SECONDS` of starting
its state is `crashloop` (it is still retried, at the longest backoff). A child that exits 0 has
finished its work (e.g. `run_time_seconds`) and is not restarted. A child with a status file that has
not refreshed it for `health_deadline_seconds` (or not written it that long after its start) is hung,
e.g. stopped by SIGSTOP: it is killed and restarted like any other exit.

A full disk does not end the supervisor: a state or log write that fails is retried (log lines are
dropped and counted meanwhile), the error is reported as `write_error` in `state/supervisor.json` as
soon as that can be written, and the services are supervised throughout, so they resume when space
returns. While the state cannot be written its heartbeat (`updated_at`) goes stale, which `status` reports.

The supervisor holds `state/locks/supervisor.lock` (flock) for its whole life: the kernel drops the
lock when it dies, so a second supervisor can never run for the same project.

It also watches the project config file named in the spec (`config_file`) and hot-reloads a change
(runtimes/config_watch.py, live/reload.py).

Run: `python -m sensor_manager.runtimes.supervisor --project-dir P` (the local runtime does this, detached).
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from fleetcore.atomicfiles import write_atomic
from fleetcore.statusfiles import StatusDocument, read_json_object, utc_now_iso
from sensor_manager.layout import ProjectLayout
from sensor_manager.runtimes.config_watch import ConfigWatcher
from sensor_manager.runtimes.logfiles import LogWriter, stamp
from sensor_manager.runtimes.processes import PROJECT_ENV, SERVICE_ENV, ProcessRecord

SCHEMA_VERSION = 1
QUICK_EXIT_SECONDS = 10.0
CRASHLOOP_AFTER = 5
BACKOFF_INITIAL_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
STOP_GRACE_SECONDS = 10.0
HEALTH_DEADLINE_SECONDS = 120.0  # well above an uploader's longest pause between status writes
STATE_REFRESH_SECONDS = 2.0
POLL_SECONDS = 0.5  # children are also polled at once on SIGCHLD


def _die_with_parent() -> None:
    """In the child before exec (Linux): get SIGTERM if the supervisor dies, so a kill -9 of it strands nothing."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def spec_path(layout: ProjectLayout) -> Path:
    return layout.state / "supervisor-spec.json"


def state_path(layout: ProjectLayout) -> Path:
    return layout.state / "supervisor.json"


def lock_path(layout: ProjectLayout) -> Path:
    return layout.locks / "supervisor.lock"


def write_json_atomic(path: Path, document: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(document, separators=(",", ":")))


ServiceState = Literal["running", "stopped", "restarting", "crashloop"]


class ServiceEntry(BaseModel):
    """One service in state/supervisor.json."""

    state: ServiceState = "stopped"
    desired: str | None = None
    pid: int | None = None
    create_time: float | None = None
    started_at: str | None = None
    restarts: int = 0
    exit_code: int | None = None
    restart_token: int = 0


class SupervisorState(BaseModel):
    """state/supervisor.json: what the supervisor observes, written by it and read by the local runtime.
    `supervisor` (its ProcessRecord plus started_at) is None once it stopped cleanly. A missing
    `schema_version` reads as 1; unknown keys are ignored."""

    schema_version: int = SCHEMA_VERSION
    updated_at: str | None = None
    updated_at_epoch: float = 0.0
    supervisor: dict[str, Any] | None = None
    generation_seen: int = -1
    stopping: bool = False
    write_error: str | None = None
    services: dict[str, ServiceEntry] = Field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> "SupervisorState":
        """The state at `path`; an empty one (no supervisor, no services) when missing or unreadable."""
        try:
            return cls.model_validate(read_json_object(path) or {})
        except ValueError:
            return cls()


@dataclass
class Policy:
    """Restart and stop timings; the spec's `policy` object may override any of them (tests do)."""

    quick_exit_seconds: float = QUICK_EXIT_SECONDS
    crashloop_after: int = CRASHLOOP_AFTER
    backoff_initial_seconds: float = BACKOFF_INITIAL_SECONDS
    backoff_max_seconds: float = BACKOFF_MAX_SECONDS
    stop_grace_seconds: float = STOP_GRACE_SECONDS
    health_deadline_seconds: float = HEALTH_DEADLINE_SECONDS

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "Policy":
        overrides = spec.get("policy") or {}
        return cls(**{k: type(getattr(cls, k))(v) for k, v in overrides.items() if k in cls.__dataclass_fields__})


@dataclass
class Child:
    """One service as the supervisor tracks it."""

    name: str
    argv: list[str]
    env: dict[str, str]
    status_file: str | None = None  # watched for hangs when set
    desired: str = "stopped"  # running | stopped
    restart_token: int = 0
    state: ServiceState = "stopped"
    process: subprocess.Popen | None = None
    record: ProcessRecord | None = None
    started_at: str | None = None
    started_monotonic: float = 0.0
    started_epoch: float = 0.0
    restarts: int = 0
    quick_exits: int = 0
    exit_code: int | None = None
    restart_at: float | None = None  # monotonic time of the next (re)start
    kill_at: float | None = None  # monotonic deadline of a graceful stop
    writer: LogWriter | None = None
    fd: int | None = None
    pending_restart: bool = False  # stop requested as part of `restart`

    def entry(self) -> ServiceEntry:
        return ServiceEntry(
            state=self.state,
            desired=self.desired,
            pid=self.record.pid if self.record else None,
            create_time=self.record.create_time if self.record else None,
            started_at=self.started_at,
            restarts=self.restarts,
            exit_code=self.exit_code,
            restart_token=self.restart_token,
        )


class Supervisor:
    def __init__(self, layout: ProjectLayout):
        self.layout = layout
        self.children: dict[str, Child] = {}
        self.policy = Policy()
        self.generation_seen = -1
        self.stopping = False
        self.reload = True
        self.selector = selectors.DefaultSelector()
        self.log = LogWriter(layout.logs / "supervisor.log")
        self.record = ProcessRecord.of(os.getpid())
        self.started_at = utc_now_iso()
        self._last_state_write = 0.0
        self._last_snapshot: tuple | None = None
        self._child_exited = True
        self._next_poll = 0.0
        self._next_health_check = 0.0
        self.state_error: str | None = None  # the last failed write of state/supervisor.json
        self.config_watch = ConfigWatcher(layout, self.log.write_line)

    # --- signals -------------------------------------------------------------------------------
    def install_signals(self) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        os.set_blocking(wake_r, False)
        signal.set_wakeup_fd(wake_w)
        self.selector.register(wake_r, selectors.EVENT_READ, None)
        self._wake_r = wake_r
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        signal.signal(signal.SIGCHLD, self._on_child)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def _on_stop(self, *_: Any) -> None:
        self.stopping = True

    def _on_reload(self, *_: Any) -> None:
        self.reload = True

    def _on_child(self, *_: Any) -> None:
        self._child_exited = True

    # --- spec ----------------------------------------------------------------------------------
    def load_spec(self) -> None:
        spec = read_json_object(spec_path(self.layout)) or {}
        self.policy = Policy.from_spec(spec)
        desired = spec.get("desired", {})
        tokens = spec.get("restart_tokens", {})
        for service in spec.get("services", []):
            name = service["name"]
            child = self.children.get(name)
            if child is None:
                child = self.children[name] = Child(name, service["argv"], service.get("env", {}))
                child.restart_token = int(tokens.get(name, 0))
            child.argv, child.env = service["argv"], service.get("env", {})
            child.status_file = service.get("status_file")
            child.desired = desired.get(name, "stopped")
            token = int(tokens.get(name, 0))
            if token != child.restart_token:
                child.restart_token = token
                if child.process is not None and child.desired == "running":
                    child.pending_restart = True
                    self._begin_stop(child)
                elif child.process is None:  # restarting or crash-looping: try again now, with a clean slate
                    child.restart_at, child.quick_exits, child.state = None, 0, "stopped"
        for name in set(self.children) - {s["name"] for s in spec.get("services", [])}:
            self.children[name].desired = "stopped"
        self.generation_seen = int(spec.get("generation", 0))
        self.config_watch.watch(spec.get("config_file"))
        self.reconcile()

    def reconcile(self) -> None:
        now = time.monotonic()
        for child in self.children.values():
            wants = "stopped" if self.stopping else child.desired
            if wants == "running":
                due = child.restart_at is None or child.restart_at <= now
                if child.process is None and not child.pending_restart and due:
                    self._spawn(child)
            else:
                child.restart_at = None
                if child.process is not None:
                    self._begin_stop(child)
                else:
                    child.state = "stopped"

    # --- children ------------------------------------------------------------------------------
    def _spawn(self, child: Child) -> None:
        env = {**os.environ, **child.env, PROJECT_ENV: str(self.layout.root), SERVICE_ENV: child.name, "PYTHONUNBUFFERED": "1"}
        if child.writer is None:
            child.writer = LogWriter(self.layout.logs / f"{child.name}.log")
        try:
            process = subprocess.Popen(
                child.argv, env=env, cwd=self.layout.root, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, close_fds=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        except OSError as exc:
            self._note(child, f"Service could not start. error={exc}")
            self._after_exit(child, 127, quick=True)
            return
        child.process = process
        try:
            child.record = ProcessRecord.of(process.pid)
        except Exception:  # exited already; the exit is handled on the next poll
            child.record = ProcessRecord(process.pid, 0.0)
        assert process.stdout is not None  # stdout=PIPE above
        child.fd = process.stdout.fileno()
        os.set_blocking(child.fd, False)
        self.selector.register(child.fd, selectors.EVENT_READ, child)
        child.started_at = utc_now_iso()
        child.started_monotonic = time.monotonic()
        child.started_epoch = time.time()
        child.restart_at = None
        child.kill_at = None
        if child.state != "crashloop":  # a crash-looping child keeps that state until it stays up
            child.state = "running"
        self._note(child, f"Service started. pid={process.pid} restarts={child.restarts}")

    def _begin_stop(self, child: Child) -> None:
        if child.process is None or child.kill_at is not None:
            return
        try:
            child.process.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        child.kill_at = time.monotonic() + self.policy.stop_grace_seconds

    def _read_output(self, child: Child) -> None:
        while child.fd is not None:
            try:
                chunk = os.read(child.fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self._stop_reading(child, child.fd)
                return
            if child.writer is not None:
                child.writer.write_output(chunk)

    def _stop_reading(self, child: Child, fd: int) -> None:
        self.selector.unregister(fd)
        if child.process is not None and child.process.stdout is not None:
            child.process.stdout.close()
        child.fd = None

    def poll_children(self) -> None:
        now = time.monotonic()
        for child in self.children.values():
            if child.process is None:
                continue
            code = child.process.poll()
            if code is None:
                if child.kill_at is not None and now >= child.kill_at:
                    self._note(child, "Service did not stop in time; killing it.")
                    child.process.kill()
                    child.kill_at = now + self.policy.stop_grace_seconds
                elif child.state == "crashloop" and now - child.started_monotonic > self.policy.quick_exit_seconds:
                    child.state, child.quick_exits = "running", 0
                continue
            if child.fd is not None:
                self._read_output(child)
            if child.fd is not None:  # a grandchild may still hold the pipe; stop reading it
                self._stop_reading(child, child.fd)
            if child.writer is not None:
                child.writer.flush_partial()
            quick = now - child.started_monotonic < self.policy.quick_exit_seconds
            self._note(child, f"Service exited. pid={child.process.pid} exit_code={code}")
            child.process = None
            child.kill_at = None
            self._after_exit(child, code, quick)

    def check_hung(self) -> None:
        """Kill every child whose status file went silent past the health deadline; it is restarted on exit."""
        now = time.monotonic()
        if now < self._next_health_check:
            return
        self._next_health_check = now + STATE_REFRESH_SECONDS
        wall = time.time()
        for child in self.children.values():
            if child.process is None or child.kill_at is not None or not child.status_file:
                continue
            document = StatusDocument.read(Path(child.status_file))
            if document is not None and document.pid == child.process.pid:
                silent_since = document.updated_at_epoch
            else:  # not this process's file (yet): silent since it started
                silent_since = child.started_epoch
            silent = wall - max(silent_since, child.started_epoch)
            if silent > self.policy.health_deadline_seconds:
                self._note(child, f"Service is hung: no status update for {silent:.0f} s; killing it. pid={child.process.pid}")
                child.process.kill()  # SIGTERM would wait forever on a stopped process
                child.kill_at = now + self.policy.stop_grace_seconds

    def _after_exit(self, child: Child, code: int, quick: bool) -> None:
        child.exit_code = code
        child.record = None
        wants_running = child.desired == "running" and not self.stopping
        if child.pending_restart:
            child.pending_restart = False
            child.state = "stopped"
            if wants_running:
                self._spawn(child)
            return
        if not wants_running:
            child.state = "stopped"
            return
        if code == 0:
            child.state = "stopped"
            child.desired = "stopped"
            self._note(child, "Service finished its work; not restarting it.")
            return
        child.restarts += 1
        child.quick_exits = child.quick_exits + 1 if quick else 1
        policy = self.policy
        delay = min(policy.backoff_initial_seconds * 2 ** (child.quick_exits - 1), policy.backoff_max_seconds)
        child.restart_at = time.monotonic() + delay
        if child.quick_exits >= policy.crashloop_after:
            if child.state != "crashloop":
                self._note(child, f"Service is crash-looping. quick_exits={child.quick_exits}")
            child.state = "crashloop"
        else:
            child.state = "restarting"

    def _note(self, child: Child, message: str) -> None:
        """A supervisor event, in the service's own log and in supervisor.log."""
        if child.writer is not None:
            child.writer.write_line(f"[supervisor] {message}")
        self.log.write_line(f"{message} service={child.name}")

    # --- state ---------------------------------------------------------------------------------
    def write_state(self, final: bool = False) -> None:
        """Rewrite state/supervisor.json when something changed, or every STATE_REFRESH_SECONDS as a heartbeat."""
        services = {name: child.entry() for name, child in self.children.items()}
        snapshot = (self.generation_seen, self.stopping, final, services)
        since_write = time.monotonic() - self._last_state_write
        if since_write < STATE_REFRESH_SECONDS and (snapshot == self._last_snapshot or self.state_error is not None):
            return
        self._last_snapshot = snapshot
        document = SupervisorState(
            updated_at=utc_now_iso(),
            updated_at_epoch=time.time(),
            supervisor=None if final else {**self.record.to_dict(), "started_at": self.started_at},
            generation_seen=self.generation_seen,
            stopping=self.stopping,
            write_error=self.write_error(),
            services=services,
        )
        try:
            write_json_atomic(state_path(self.layout), document.model_dump(mode="json"))
        except OSError as exc:
            if self.state_error is None:
                self.log.write_line(f"Supervisor state could not be written; retrying. error={exc}")
            self.state_error = f"{state_path(self.layout)}: {exc.strerror or exc}"
            self._last_snapshot = None  # retried at the next refresh
        else:
            if self.state_error is not None:
                self.log.write_line("Supervisor state written again.")
            self.state_error = None
        self._last_state_write = time.monotonic()

    def write_error(self) -> str | None:
        """The write failing now (state, supervisor log or a service log), for `status` and `diagnostics`."""
        writers = [self.log, *(c.writer for c in self.children.values() if c.writer is not None)]
        return self.state_error or next((w.error for w in writers if w.error), None)

    def _timeout(self) -> float:
        now = time.monotonic()
        deadlines = [c.restart_at for c in self.children.values() if c.restart_at is not None]
        deadlines += [c.kill_at for c in self.children.values() if c.kill_at is not None]
        deadlines.append(self._last_state_write + STATE_REFRESH_SECONDS)
        return max(0.0, min(min(deadlines) - now, 0.5))

    def run(self) -> int:
        self.log.write_line(f"Supervisor started. pid={os.getpid()} project={self.layout.root}")
        while True:
            if self.reload and not self.stopping:
                self.reload = False
                self.load_spec()
            now = time.monotonic()
            if self._child_exited or now >= self._next_poll:  # a chatty child's output need not poll every child
                self._child_exited = False
                self._next_poll = now + POLL_SECONDS
                self.poll_children()
            self.check_hung()
            self.config_watch.poll(now)
            self.reconcile()
            if self.stopping and all(c.process is None for c in self.children.values()):
                break
            self.write_state()
            for key, _ in self.selector.select(self._timeout()):
                if key.data is None:
                    try:
                        while os.read(self._wake_r, 512):
                            pass
                    except BlockingIOError:
                        pass
                else:
                    self._read_output(key.data)
        for child in self.children.values():
            if child.writer is not None:
                child.writer.close()
        self.write_state(final=True)
        self.log.write_line("Supervisor stopped.")
        self.log.close()
        return 0


def hold_lock(layout: ProjectLayout) -> int | None:
    """Take the project's supervisor lock; None when another supervisor holds it."""
    layout.locks.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(layout), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.set_inheritable(fd, False)
    return fd


def is_lock_held(layout: ProjectLayout) -> bool:
    """True while a live supervisor holds this project's lock (the kernel releases it when it dies)."""
    if not lock_path(layout).exists():
        return False
    fd = os.open(lock_path(layout), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock we may just have taken
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sensor_manager.runtimes.supervisor")
    parser.add_argument("--project-dir", required=True)
    args = parser.parse_args(argv)
    layout = ProjectLayout.at(args.project_dir)
    layout.ensure_state()
    lock = hold_lock(layout)
    if lock is None:
        sys.stderr.write(f"{stamp()} Another supervisor runs for {layout.root}; exiting.\n")
        return 1
    supervisor = Supervisor(layout)
    supervisor.install_signals()
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
