"""Process records: a pid is trusted only together with its start time and command line.

A pid written to a file outlives its process (a reboot, a kill -9); the kernel reuses it for any
other program. So every pid this project records carries the process's start time and command line,
and `is_alive` checks all three with psutil before anything is signalled.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

# Marks every process the local runtime starts; `cleanup` proves ownership by it.
PROJECT_ENV = "SENSOR_FLEET_PROJECT_DIR"
SERVICE_ENV = "SENSOR_FLEET_SERVICE"
CREATE_TIME_TOLERANCE = 0.05  # psutil start times are in clock ticks (10 ms)


@dataclass(frozen=True)
class ProcessRecord:
    pid: int
    create_time: float
    cmdline: tuple[str, ...] = field(default=())

    @classmethod
    def of(cls, pid: int) -> "ProcessRecord":
        """Record the running process `pid` (raises psutil.NoSuchProcess when it is gone)."""
        process = psutil.Process(pid)
        with process.oneshot():
            return cls(pid, process.create_time(), tuple(process.cmdline()))

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "ProcessRecord | None":
        if not data or not data.get("pid"):
            return None
        return cls(int(data["pid"]), float(data.get("create_time", 0)), tuple(data.get("cmdline") or ()))

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "create_time": self.create_time, "cmdline": list(self.cmdline)}

    def process(self) -> psutil.Process | None:
        """The live process this record describes, or None when it is gone or the pid was reused."""
        try:
            process = psutil.Process(self.pid)
            with process.oneshot():
                if process.status() == psutil.STATUS_ZOMBIE:
                    return None
                if abs(process.create_time() - self.create_time) > CREATE_TIME_TOLERANCE:
                    return None
                if self.cmdline and tuple(process.cmdline()) != self.cmdline:
                    return None
            return process
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None

    def is_alive(self) -> bool:
        return self.process() is not None


def project_processes(project_dir: str) -> list[psutil.Process]:
    """Live processes of this user that the local runtime started for `project_dir` (proved by environment)."""
    found = []
    me = os.getpid()
    for process in psutil.process_iter(["pid", "uids"]):
        if process.pid == me:
            continue
        try:
            if process.info["uids"] and process.info["uids"].real != os.getuid():
                continue
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if process.environ().get(PROJECT_ENV) == project_dir:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _is_gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE  # dead, waiting for a parent (maybe init) to reap it
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return True
    except psutil.AccessDenied:
        return False


def wait_gone(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until every process has exited (zombies count as exited); return those still alive."""
    deadline = time.monotonic() + timeout
    alive = [p for p in processes if not _is_gone(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [p for p in alive if not _is_gone(p)]
    return alive


def terminate_all(processes: list[psutil.Process], grace_seconds: float) -> list[psutil.Process]:
    """SIGTERM, wait up to `grace_seconds`, then SIGKILL whatever is left; return the processes killed hard."""
    for process in processes:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    alive = wait_gone(processes, grace_seconds)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    wait_gone(alive, 5)
    return alive
