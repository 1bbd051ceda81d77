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
from typing import Any

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


def read_status(path: Path) -> dict[str, Any] | None:
    """The JSON object at `path` (a status file, or the supervisor's spec and state), or None when it is
    missing, unreadable or not an object: callers read keys from it."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def fresh_status(path: Path, now: float | None = None) -> tuple[dict[str, Any] | None, str]:
    """(document, "") when `path` holds a status document refreshed in time, else (None, why not): the first
    half of every healthcheck."""
    document = read_status(path)
    if document is None:
        return None, f"{path}: no readable status file"
    if is_stale(document, now):
        return None, f"{path}: stale (updated {document.get('updated_at')}, interval {document.get('interval_seconds')} s)"
    return document, ""


def is_stale(document: dict[str, Any], now: float | None = None) -> bool:
    """True when the writer has not refreshed the file within 3x its interval."""
    now = time.time() if now is None else now
    age = now - float(document.get("updated_at_epoch", 0))
    return age > STALE_AFTER_INTERVALS * float(document.get("interval_seconds", 1))
