"""The single-writer lock of a sensor DB: an exclusive `flock` on `sensor_data.db.lock` beside it.

The kernel drops the lock when the holder dies (even on kill -9), so a stale lock file never blocks a
restart. The holder's pid is written into the file so a refused writer can name it.
"""
from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from fleetcore.errors import ResourceLimitError, WriterLockedError
from sensor_manager.simulator.limits import open_files_message


class WriterLock:
    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if exc.errno == errno.EMFILE:
                raise ResourceLimitError(open_files_message()) from None
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            db = self.path.with_suffix("")
            raise WriterLockedError(
                f"{db}: another writer holds {self.path.name} (pid {holder}); stop that process first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None

