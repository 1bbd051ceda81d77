"""Exclusive locks in `<state root>/locks/`: one per source, so two uploaders never ship one DB
concurrently, and one per uploader id, so a second uploader of the same name (an `upload --once` beside
the running fleet) never takes over the first one's status file.

A source lock is an `flock` on a file named for the DB's absolute path (not the uploader id, so
uploaders with different ids exclude each other too). The kernel drops a lock when its holder dies,
even on kill -9.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path

from fleetcore.errors import SensorManagerError


class UploaderBusyError(SensorManagerError):
    """Another running uploader holds this uploader's name or the sources it was asked to ship (exit 1)."""


def _try_flock(path: Path, holder: str) -> int | None:
    """The open, exclusively locked file (its content: our pid and `holder`), or None when another process has it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {holder}\n".encode())
    return fd


def lock_holder_pid(path: Path) -> str:
    """The pid written into a lock file by its holder ("?" when unreadable)."""
    try:
        return path.read_text().split()[0]
    except (OSError, IndexError):
        return "?"


class UploaderLock:
    """Held for an uploader's whole run under its id: `locks/uploader-<id>.lock`."""

    def __init__(self, directory: Path, uploader_id: str):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"uploader-{uploader_id}.lock"
        fd = _try_flock(self.path, f"uploader-{uploader_id}")
        if fd is None:
            raise UploaderBusyError(
                f"uploader {uploader_id} is already running (pid {lock_holder_pid(self.path)}, {self.path}); this run "
                "left its status file alone and shipped nothing. Let it ship, stop the fleet first (`stop`), or "
                "pass another --uploader-id.")
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class SourceLocks:
    def __init__(self, directory: Path):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._held: dict[Path, int] = {}

    def lock_file(self, db_path: Path) -> Path:
        digest = hashlib.sha256(str(db_path.resolve()).encode()).hexdigest()[:20]
        return self.directory / f"source-{digest}.lock"

    def acquire(self, db_path: Path) -> bool:
        """True when this process holds (or now took) the DB's lock; False when another process has it."""
        if db_path in self._held:
            return True
        fd = _try_flock(self.lock_file(db_path), str(db_path.resolve()))
        if fd is None:
            return False
        self._held[db_path] = fd
        return True

    def release(self, db_path: Path) -> None:
        fd = self._held.pop(db_path, None)
        if fd is not None:
            os.close(fd)

    def release_all(self) -> None:
        for path in list(self._held):
            self.release(path)
