"""Status files: small JSON documents a long-running process rewrites every few seconds.

Every status file carries `schema_version`, `updated_at` (UTC ISO-8601), `pid` and
`interval_seconds`, and is written atomically (fleetcore.atomicfiles) so a reader never sees half a
document. A file older than 3x its interval is stale: its writer is presumed gone.
"""
from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from fleetcore.atomicfiles import write_atomic

SCHEMA_VERSION = 1
STALE_AFTER_INTERVALS = 3


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def write_status(path: Path, payload: dict[str, Any], interval_seconds: float) -> None:
    """Atomically replace `path` with `payload` plus the common fields."""
    document = {
        "schema_version": SCHEMA_VERSION,
        "updated_at": utc_now_iso(),
        "updated_at_epoch": time.time(),
        "pid": os.getpid(),
        "interval_seconds": interval_seconds,
        **payload,
    }
    write_atomic(path, json.dumps(document, separators=(",", ":"), default=str, allow_nan=False))  # NaN is not JSON


def read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object at `path` (a status file, or the supervisor's spec and state), or None when it is
    missing, unreadable or not an object: callers read keys from it."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def is_stale(document: dict[str, Any], now: float | None = None) -> bool:
    """True when the writer has not refreshed the file within 3x its interval."""
    now = time.time() if now is None else now
    age = now - float(document.get("updated_at_epoch", 0))
    return age > STALE_AFTER_INTERVALS * float(document.get("interval_seconds", 1))


HEADER_FIELDS = {"schema_version", "updated_at", "updated_at_epoch", "pid", "interval_seconds"}


class StatusDocument(BaseModel):
    """The common fields of every status file; each file's model extends it and is used by its writer
    and its readers alike. `schema_version` is the model's version: a file from before it existed
    reads as version 1, and unknown keys (a newer writer's) are ignored."""

    model_config = ConfigDict(extra="ignore")

    schema_version: int = SCHEMA_VERSION
    updated_at: str | None = None
    updated_at_epoch: float = 0.0
    pid: int | None = None
    interval_seconds: float = 1.0

    @classmethod
    def read(cls, path: Path) -> Self | None:
        """The file at `path`, or None when it is missing, unreadable or not this model's shape."""
        document = read_json_object(path)
        try:
            return None if document is None else cls.model_validate(document)
        except ValidationError:
            return None

    @classmethod
    def read_fresh(cls, path: Path, now: float | None = None) -> tuple[Self | None, str]:
        """(document, "") when `path` holds this model refreshed in time, else (None, why not): the first
        half of every healthcheck."""
        document = cls.read(path)
        if document is None:
            return None, f"{path}: no readable status file"
        if document.is_stale(now):
            return None, f"{path}: stale (updated {document.updated_at}, interval {document.interval_seconds} s)"
        return document, ""

    def payload(self) -> dict[str, Any]:
        """The JSON body `write_status` completes with the common fields."""
        return self.model_dump(mode="json", exclude=HEADER_FIELDS)

    def write(self, path: Path) -> None:
        write_status(path, self.payload(), self.interval_seconds)

    def is_stale(self, now: float | None = None) -> bool:
        return is_stale({"updated_at_epoch": self.updated_at_epoch, "interval_seconds": self.interval_seconds}, now)
