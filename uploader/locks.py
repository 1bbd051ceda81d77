"""Per-source exclusive locks in `<state root>/locks/`, so two uploaders never ship one DB concurrently.

The lock is an `flock` on a file named for the DB's absolute path (not the uploader id, so uploaders
with different ids exclude each other too). The kernel drops it when the holder dies, even on kill -9.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path


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
        fd = os.open(self.lock_file(db_path), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {db_path.resolve()}\n".encode())
        self._held[db_path] = fd
        return True

    def release(self, db_path: Path) -> None:
        fd = self._held.pop(db_path, None)
        if fd is not None:
            os.close(fd)

    def release_all(self) -> None:
        for path in list(self._held):
            self.release(path)
