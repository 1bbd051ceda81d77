"""The uploader's status file (`<state root>/status/uploader-<id>.json`) and the `--check` health check.

Shape (ARCHITECTURE.md): state, per-sink rows_shipped / lag_rows / lag_seconds / last_success /
last_error / retries / dead_lettered / failing_permanently, and sources[] with source, generation,
sensor_id, end_id, positions {sink: id}, locked (this uploader holds the source's lock) plus, when
relevant, skipped (why it is not being shipped) and error; the settings file applied (its digest) or
rejected (with the errors), and the last stage switches with their boundary seq per source. `UploaderStatus` is the one model of it:
the pipeline writes it, the monitor, metrics and health checks read it. Its parts are dataclasses the
pipeline updates in place; pydantic validates them when a file is read.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from fleetcore.livesettings import AppliedSettings, RejectedSettings  # noqa: F401 - part of the status model
from fleetcore.statusfiles import StatusDocument


@dataclass
class SinkStatus:
    stage: str | None = None  # the stage whose output the sink receives
    rows_shipped: int = 0
    lag_rows: int = 0
    lag_seconds: float = 0.0
    last_success: str | None = None
    last_error: str | None = None
    retries: int = 0
    dead_lettered: int = 0
    failing_permanently: bool = False
    # Service figures of sinks that report them (Cosmos DB): request units in all, per second, throttled requests.
    request_units: float | None = None
    request_units_per_second: float | None = None
    throttled: int | None = None


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


class UploaderStatus(StatusDocument):
    role: str = "uploader"
    name: str | None = None
    uploader_id: str | None = None
    state: str | None = None
    sinks: dict[str, SinkStatus] = Field(default_factory=dict)
    sources: list[SourceStatus] = Field(default_factory=list)
    project: str | None = None
    fleet_epoch: int | None = None
    mode: str | None = None  # continuous | once
    lake: str | None = None
    data: str | None = None
    applied_settings: AppliedSettings | None = None  # the settings file content running now (absent: not read from a file)
    rejected_settings: RejectedSettings | None = None  # the last change refused, until a valid one is applied
    # The last few stage switches: {"at", "sink", "from", "to", "positions": {source: last seq of the old stage}}.
    stage_switches: list[dict[str, Any]] = Field(default_factory=list)


def check_health(path: Path, now: float | None = None) -> tuple[bool, str]:
    """(healthy, one-line reason): fresh within 3x the interval and no sink failing permanently."""
    status, problem = UploaderStatus.read_fresh(path, now)
    if status is None:
        return False, problem
    failing = [name for name, sink in status.sinks.items() if sink.failing_permanently]
    if failing:
        return False, f"{path}: sink {', '.join(failing)} failing permanently"
    return True, f"{path}: {status.state}"
