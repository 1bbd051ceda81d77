"""The uploader's status file (`<state root>/status/uploader-<id>.json`) and the `--check` health check.

Shape (ARCHITECTURE.md): state, per-sink rows_shipped / lag_rows / lag_seconds / last_success /
last_error / retries / dead_lettered / failing_permanently, and sources[] with source, generation,
sensor_id, end_id, positions {sink: id}, locked (this uploader holds the source's lock) plus, when
relevant, skipped (why it is not being shipped) and error.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sensor_manager.statusfile import is_stale, read_status, write_status


@dataclass
class SinkStatus:
    rows_shipped: int = 0
    lag_rows: int = 0
    lag_seconds: float = 0.0
    last_success: str | None = None
    last_error: str | None = None
    retries: int = 0
    dead_lettered: int = 0
    failing_permanently: bool = False


@dataclass
class SourceStatus:
    source: str
    generation: str | None = None
    sensor_id: str | None = None
    shape: str | None = None
    end_id: int = 0
    positions: dict[str, int] = field(default_factory=dict)
    locked: bool = False
    skipped: str | None = None
    error: str | None = None


def write_uploader_status(path: Path, *, uploader_id: str, state: str, interval: float,
                          sinks: dict[str, SinkStatus], sources: list[SourceStatus], extra: dict[str, Any]) -> None:
    write_status(path, {
        "role": "uploader",
        "name": f"uploader-{uploader_id}",
        "uploader_id": uploader_id,
        "state": state,
        "sinks": {name: asdict(status) for name, status in sinks.items()},
        "sources": [asdict(source) for source in sources],
        **extra,
    }, interval)


def check_health(path: Path, now: float | None = None) -> tuple[bool, str]:
    """(healthy, one-line reason): fresh within 3x the interval and no sink failing permanently."""
    document = read_status(path)
    if document is None:
        return False, f"{path}: no readable status file"
    if is_stale(document, now):
        return False, f"{path}: stale (updated {document.get('updated_at')}, interval {document.get('interval_seconds')} s)"
    failing = [name for name, sink in (document.get("sinks") or {}).items() if sink.get("failing_permanently")]
    if failing:
        return False, f"{path}: sink {', '.join(failing)} failing permanently"
    return True, f"{path}: {document.get('state')}"
