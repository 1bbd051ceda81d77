"""Per-service log files of the local runtime: `state/logs/<service>.log`, rotated, one timestamp per line.

Each line is `<UTC ISO-8601 timestamp> <text>`; the supervisor stamps a line when it reads it from the
child's output, so `logs --since` and `logs -t` work on any program's output. A file is rotated at
`MAX_BYTES` to `<service>.log.1` … `.log.<BACKUPS>`; a reader following a file reopens it when it is
replaced or truncated, so `logs -f` keeps going across rotation and restarts.
"""
from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, TextIO

MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 3


def stamp(now: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if now is None else now, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def split_line(raw: str) -> tuple[str | None, str]:
    """(timestamp, text) of one stored line; lines not written by a LogWriter have no timestamp."""
    head, sep, rest = raw.partition(" ")
    if sep and len(head) == 27 and head.endswith("Z") and head[4] == "-" and head[10] == "T":
        return head, rest
    return None, raw


class LogWriter:
    """Appends stamped lines to one service's log, rotating by size.

    A write that fails (a full disk) never raises: the lines are dropped and counted, `error` says why,
    and the next write that succeeds first records how many were lost.
    """

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES, backups: int = BACKUPS):
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._partial = b""
        self._fd: int | None = None
        self._size = 0
        self.dropped = 0
        self.error: str | None = None
        self._open()

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._size = os.fstat(self._fd).st_size
        except OSError as exc:
            self._fd = None
            self.error = f"{self.path}: {exc.strerror or exc}"

    def write_output(self, chunk: bytes) -> None:
        """Stamp and append every complete line of `chunk`; keep a trailing partial line for later."""
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        if len(self._partial) > 64 * 1024:  # a program that never ends its line
            lines.append(self._partial)
            self._partial = b""
        if lines:
            self._append(lines)

    def write_line(self, text: str) -> None:
        self._append([text.encode("utf-8", "replace")])

    def flush_partial(self) -> None:
        if self._partial:
            self._append([self._partial])
            self._partial = b""

    def _append(self, lines: list[bytes]) -> None:
        if self._fd is None:
            self._open()
        prefix = stamp().encode() + b" "
        notice = [f"[log] {self.dropped} lines were lost: {self.error}".encode()] if self.dropped else []
        payload = b"".join(prefix + line.rstrip(b"\r") + b"\n" for line in [*notice, *lines])
        written = 0
        if self._fd is not None:
            try:
                written = os.write(self._fd, payload)
            except OSError as exc:
                self.error = f"{self.path}: {exc.strerror or exc}"
        self._size += written
        if written < len(payload):  # nothing written, or the disk filled up mid-write: this chunk counts as lost
            self.dropped += len(lines)
            self.error = self.error or f"{self.path}: short write (disk full?)"
            return
        self.dropped, self.error = 0, None
        if self._size >= self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        try:
            for index in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        except OSError as exc:
            self.error = f"{self.path}: {exc.strerror or exc}"
        self._open()

    def close(self) -> None:
        self.flush_partial()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass(frozen=True)
class StoredLine:
    timestamp: str | None
    text: str


def _is_since(line: StoredLine, since: str | None) -> bool:
    return since is None or (line.timestamp is not None and line.timestamp >= since)


def read_lines(path: Path, tail: int | None = None, since: str | None = None) -> list[StoredLine]:
    """The stored lines of one service (current file plus rotated ones, oldest first), filtered."""
    files = [path.with_name(f"{path.name}.{i}") for i in range(BACKUPS, 0, -1)] + [path]
    kept: deque[StoredLine] = deque(maxlen=tail if tail is not None and tail >= 0 else None)
    for file in files:
        if tail is not None and tail >= 0 and file != path and len(kept) == tail and since is None:
            continue  # older rotations cannot contribute to a full tail; the newest file is read last
        try:
            with open(file, encoding="utf-8", errors="replace") as handle:
                for raw in handle:
                    line = StoredLine(*split_line(raw.rstrip("\n")))
                    if _is_since(line, since):
                        kept.append(line)
        except FileNotFoundError:
            continue
    return list(kept)


class Follower:
    """Yields lines appended to one file from its current end; reopens when the file is replaced or truncated."""

    def __init__(self, path: Path):
        self.path = path
        self._handle: TextIO | None = None
        self._inode: int | None = None
        self._buffer = ""
        self._open(at_end=True)

    def _open(self, at_end: bool) -> None:
        try:
            handle = open(self.path, encoding="utf-8", errors="replace")
        except FileNotFoundError:
            self._handle = None
            return
        if at_end:
            handle.seek(0, os.SEEK_END)
        self._handle = handle
        self._inode = os.fstat(handle.fileno()).st_ino

    def _replaced_or_truncated(self, handle: TextIO) -> bool:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return False
        return stat.st_ino != self._inode or stat.st_size < handle.tell()

    def read_new(self) -> list[StoredLine]:
        if self._handle is None:
            self._open(at_end=False)  # the file appeared after we started: everything in it is new
            if self._handle is None:
                return []
        lines = self._drain(self._handle)
        if self._replaced_or_truncated(self._handle):
            self._handle.close()
            self._open(at_end=False)
            if self._handle is not None:
                lines += self._drain(self._handle)
        return lines

    def _drain(self, handle: TextIO) -> list[StoredLine]:
        self._buffer += handle.read()
        *complete, self._buffer = self._buffer.split("\n")
        return [StoredLine(*split_line(raw)) for raw in complete]

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def open_followers(paths: dict[str, Path]) -> dict[str, Follower]:
    """Followers positioned at the current end of each file (open them before reading history)."""
    return {name: Follower(path) for name, path in paths.items()}


def follow(followers: dict[str, Follower], poll_seconds: float = 0.2) -> Iterator[tuple[str, StoredLine]]:
    """Forever: (name, line) for every line appended to any followed file, in arrival order per file."""
    try:
        while True:
            got = False
            for name, follower in followers.items():
                for line in follower.read_new():
                    got = True
                    yield name, line
            if not got:
                time.sleep(poll_seconds)
    finally:
        for follower in followers.values():
            follower.close()
