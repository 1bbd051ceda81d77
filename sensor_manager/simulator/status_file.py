"""The simulator's status file: per-sensor counters from memory, rewritten every few seconds.

Shape (ARCHITECTURE.md): `{"role": "sensor", "name", "state", "fatal_error", "sensors": {"<sensor_id>":
{"db_path", "rows_written", "seq", "last_timestamp", "readings_per_second", "errors",
"skipped_readings", "active_anomaly", "firmware_version", "identity_since_seq", "identity_since"}},
"applied_settings", "rejected_settings", "injections"}` (live changes, fleetcore/livesettings.py) plus the common fields of `statusfile.write_status` (and
`shards` in a file merged from shards). `SimulatorStatus` is the one model of it: the simulator writes
it, the monitor, the sharding merge and the health checks read it. `is_healthy` is what
`simulate --check` (the container healthcheck) answers.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import Field

from fleetcore.livesettings import AppliedSettings, RejectedSettings
from fleetcore.statusfiles import StatusDocument

LIVE_STATES = ("starting", "backfilling", "running")


def iso_ms(epoch_ms: int | None) -> str | None:
    if epoch_ms is None:
        return None
    return datetime.fromtimestamp(epoch_ms / 1000, timezone.utc).isoformat(timespec="milliseconds")


@dataclass(slots=True)
class SensorEntry:
    """One hosted sensor's counters (a dataclass: a pydantic model costs ~3x to build per sensor and write)."""
    db_path: str | None = None
    rows_written: int = 0
    seq: int | None = None
    last_timestamp: str | None = None
    readings_per_second: float = 0.0
    errors: int = 0
    last_error: str | None = None
    skipped_readings: int = 0
    active_anomaly: str | None = None
    generation: str | None = None
    firmware_version: str | None = None
    identity_since_seq: int | None = None  # first seq written with the current identity, when it changed (rollout)
    identity_since: str | None = None


class SimulatorStatus(StatusDocument):
    role: str = "sensor"
    name: str | None = None
    state: str | None = None
    fatal_error: str | None = None
    shards: int | None = None  # only in a file merged from shards
    sensors: dict[str, SensorEntry] = Field(default_factory=dict)
    applied_settings: AppliedSettings | None = None
    rejected_settings: RejectedSettings | None = None
    injections: list[str] = Field(default_factory=list)  # ids of the latest anomaly injections applied

    def payload(self) -> dict[str, Any]:
        body = super().payload()
        if self.shards is None:
            del body["shards"]
        return body


class SimulationStatus:
    def __init__(self, path: Path | None, name: str, interval_seconds: float):
        self.path = path
        self.name = name
        self.interval = interval_seconds
        self.state = "starting"
        self.next_due = time.monotonic()
        self._last_time: float | None = None
        self._last_rows: dict[str, int] = {}
        self._rates: dict[str, float] = {}
        self.applied_settings: AppliedSettings | None = None
        self.rejected_settings: RejectedSettings | None = None
        self.injections: list[str] = []

    def update(self, state: str, hosted: list, force: bool = False, fatal_error: str | None = None) -> None:
        """Rewrite the file when it is due (or `force`), from the hosted sensors' counters."""
        now = time.monotonic()
        self.state = state
        if not force and now < self.next_due:
            return
        self.next_due = now + self.interval
        self._measure_rates(hosted, now)
        if self.path is None:
            return
        self.document(hosted, fatal_error).write(self.path)

    def _measure_rates(self, hosted: list, now: float) -> None:
        if self._last_time is not None and now > self._last_time:
            elapsed = now - self._last_time
            for sensor in hosted:
                previous = self._last_rows.get(sensor.sensor_id, sensor.rows_written)
                self._rates[sensor.sensor_id] = round((sensor.rows_written - previous) / elapsed, 3)
        self._last_time = now
        self._last_rows = {s.sensor_id: s.rows_written for s in hosted}

    def document(self, hosted: list, fatal_error: str | None) -> SimulatorStatus:
        return SimulatorStatus(
            name=self.name, state=self.state, fatal_error=fatal_error, interval_seconds=self.interval,
            sensors={s.sensor_id: _sensor_entry(s, self._rates.get(s.sensor_id, 0.0)) for s in hosted},
            applied_settings=self.applied_settings, rejected_settings=self.rejected_settings,
            injections=self.injections,
        )


def _sensor_entry(sensor, rate: float) -> SensorEntry:
    writer = sensor.writer
    stream = sensor.stream
    return SensorEntry(
        db_path=str(writer.path),
        rows_written=sensor.rows_written,
        seq=writer.last_seq,
        last_timestamp=iso_ms(writer.last_ts_ms),
        readings_per_second=rate,
        errors=sensor.errors,
        last_error=sensor.last_error,
        skipped_readings=sensor.skipped,
        active_anomaly=stream.active_anomaly if stream is not None else None,
        generation=writer.generation,
        firmware_version=writer.identity.firmware_version,
        identity_since_seq=writer.identity_since_seq,
        identity_since=sensor.identity_since,
    )


def is_healthy(path: Path, now: float | None = None) -> tuple[bool, str]:
    """(healthy?, why): fresh, live and without a fatal error."""
    status, problem = SimulatorStatus.read_fresh(path, now)
    if status is None:
        return False, problem
    if status.fatal_error:
        return False, f"{path}: fatal error: {status.fatal_error}"
    if status.state not in LIVE_STATES:
        return False, f"{path}: state {status.state}"
    return True, f"{path}: {status.state}, {len(status.sensors)} sensors"
