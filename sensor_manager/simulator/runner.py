"""The multi-sensor runner: one process, one thread, 1..N sensors, each with its own DB.

Real time runs on the monotonic clock with deadlines, not sleep-after-work: each sensor has a next
commit deadline in a heap; at a deadline every reading scheduled up to now is generated as one
vectorised block and committed in one transaction. The commit window restarts after each commit,
so a commit holds at most `commit_interval_seconds` of readings (or `commit_max_rows`).

An optional backfill first writes history ending now, as fast as possible, continuing after the
last reading already in the DB. The status file is written from in-memory counters by the same
thread, so nothing but the writer ever touches a connection.
"""
from __future__ import annotations

import heapq
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from fleetcore.errors import ResourceLimitError
from fleetcore.livesettings import AppliedSettings, RejectedSettings
from fleetcore.statusfiles import utc_now_iso
from sensor_manager.simulator.anomalies import anomaly_profile
from sensor_manager.simulator.faults import clock_skew
from sensor_manager.simulator.identity import SensorIdentity, write_identity
from sensor_manager.simulator.limits import FDS_PER_SENSOR, RESERVED_FDS, raise_open_files_limit, sensors_per_process
from sensor_manager.simulator.live import POLL_SECONDS as LIVE_POLL_SECONDS
from sensor_manager.simulator.live import Injection, LiveDirectory, SettingsChange
from sensor_manager.simulator.readings import Block, ReadingStream
from sensor_manager.simulator.settings import (
    AnomalySettings,
    DeviceSettings,
    FaultSettings,
    NormalParameters,
    SimulationSettings,
)
from sensor_manager.simulator.status_file import SimulationStatus
from sensor_manager.simulator.values import MetricTable
from sensor_manager.simulator.writer import SensorWriter

log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL_SECONDS = 60.0
MAX_BACKOFF_SECONDS = 2.0
MAX_SLEEP_SECONDS = 0.2  # bounds how late a stop request is noticed
STOP_RETRY_SECONDS = 0.5
CLOSE_THREADS = 16
MAX_REPORTED_INJECTIONS = 20


@dataclass(frozen=True)
class SensorSpec:
    """A sensor to host: who it is and the folder holding its DB, identity.json and seq.hwm."""

    identity: SensorIdentity
    directory: Path
    fleet_epoch: int | None = None  # None: hosted from an identity file, outside a plan


@dataclass(frozen=True)
class RunOptions:
    simulation: SimulationSettings
    normal_parameters: NormalParameters
    anomalies: AnomalySettings
    devices: DeviceSettings
    backfill_seconds: float = 0.0
    status_file: Path | None = None
    status_name: str = "sensor-all"
    faults: FaultSettings = field(default_factory=FaultSettings)
    live_dir: Path | None = None  # polled for live changes (simulator/live.py); None: none

    def document(self) -> dict:
        """The running settings as a settings file holds them (to tell reloadable changes from others)."""
        return {
            "simulation": self.simulation.model_dump(mode="json"),
            "normal_parameters": self.normal_parameters.model_dump(mode="json"),
            "anomalies": self.anomalies.model_dump(mode="json"),
            "devices": {"modifiers": self.devices.model_dump(mode="json")["modifiers"]},
            "faults": self.faults.model_dump(mode="json"),
        }

    @property
    def rate(self) -> float:
        return self.simulation.readings_per_second


@dataclass
class HostedSensor:
    spec: SensorSpec
    writer: SensorWriter
    stream: ReadingStream | None = None
    pending: list[Block] = field(default_factory=list)
    rows_written: int = 0
    skipped: int = 0
    errors: int = 0
    backoff: float = 0.0
    retry_at: float = 0.0
    next_checkpoint: float = 0.0
    last_error: str | None = None
    identity_since: str | None = None  # when the current identity took effect in this run (a rollout)

    @property
    def readings(self) -> ReadingStream:
        """The stream, which `open()` sets for every hosted sensor before anything reads it."""
        if self.stream is None:
            raise RuntimeError(f"{self.spec.directory}: no reading stream before open()")
        return self.stream

    @property
    def sensor_id(self) -> str:
        return self.spec.identity.sensor_id


@dataclass
class SimulationSummary:
    sensors: int
    rows_written: int
    skipped_readings: int
    errors: int
    seconds: float
    stopped_by_signal: bool


def wal_autocheckpoint_pages(readings_per_second: float) -> int:
    """Small WALs for slow sensors (thousands of them may share a disk), 4 MB for fast ones."""
    return int(min(1000, max(64, readings_per_second * 8)))


class Simulation:
    """Hosts sensors: `open`, then `run` (backfill + real time), then `close` (always)."""

    def __init__(self, specs: list[SensorSpec], options: RunOptions, stop: threading.Event | None = None,
                 wall_clock: Callable[[], float] = time.time):
        self.specs = specs
        self.options = options
        self.stop = stop or threading.Event()
        self.wall_clock = wall_clock
        self.table = MetricTable(options.normal_parameters)
        self.hosted: list[HostedSensor] = []
        self.opened = False  # the status file is written only once every sensor is open
        self._stop_seen: float | None = None
        self.status = SimulationStatus(options.status_file, options.status_name,
                                       options.simulation.status_interval_seconds)
        self.live = LiveDirectory(options.live_dir) if options.live_dir is not None else None
        self.live_document: dict | None = None  # the settings file's document once one was applied

    # --- lifecycle -------------------------------------------------------------------------------

    def open(self) -> None:
        soft = raise_open_files_limit()
        capacity = sensors_per_process(soft)
        if len(self.specs) > capacity:
            raise ResourceLimitError(
                f"{len(self.specs)} sensors need about {len(self.specs) * FDS_PER_SENSOR + RESERVED_FDS} open files "
                f"but RLIMIT_NOFILE is {soft}; host at most {capacity} sensors per process (run_sharded splits them)"
            )
        rate = self.options.rate
        for spec in self.specs:
            writer = SensorWriter(spec.directory, spec.identity, fleet_epoch=spec.fleet_epoch,
                                  wal_autocheckpoint_pages=wal_autocheckpoint_pages(rate))
            writer.open()
            self.hosted.append(HostedSensor(spec, writer))
            write_identity(spec.directory / "identity.json", spec.identity)
        now_ms = self.wall_clock() * 1000
        for sensor in self.hosted:
            sensor.stream = self._stream_for(sensor, now_ms)
        self.opened = True
        self._poll_live()
        self.status.update("starting", self.hosted, force=True)

    def _stream_for(self, sensor: HostedSensor, now_ms: float, continue_at_ms: int | None = None) -> ReadingStream:
        """A reading stream for the sensor's identity and the running settings; `continue_at_ms` replaces a
        running stream (a live change) from its next scheduled reading on."""
        identity, writer, options = sensor.spec.identity, sensor.writer, self.options
        period_ms = 1000.0 / options.rate
        if continue_at_ms is not None:
            start = float(continue_at_ms)
        elif options.backfill_seconds > 0:
            start = now_ms - options.backfill_seconds * 1000
        else:
            # Spread sensors over one period so a thousand of them do not commit in the same instant.
            phase = np.random.default_rng([identity.seed, writer.next_seq]).random() * min(period_ms, 1000.0)
            start = now_ms + phase
        if writer.last_ts_ms is not None:
            last_ms: float = writer.last_ts_ms
            skew = clock_skew(options.faults, identity.seed)
            if skew is not None:  # the DB holds this clock's times: continue after the true one
                last_ms = min(now_ms, last_ms - skew.offset_ms)
            start = max(start, last_ms + period_ms)
        profile = anomaly_profile(options.anomalies, options.devices, identity.manufacturer, identity.model,
                                  identity.firmware_version)
        return ReadingStream(timezone=identity.timezone, table=self.table, profile=profile,
                             readings_per_second=options.rate, seed=identity.seed, first_seq=writer.next_seq,
                             start_ms=int(round(start)), faults=options.faults)

    def run(self) -> SimulationSummary:
        started = time.monotonic()
        try:
            if self.options.backfill_seconds > 0:
                self._backfill()
            if not self.stop.is_set():
                self._run_realtime()
        except BaseException as exc:
            self.status.update("failed", self.hosted, force=True, fatal_error=str(exc) or type(exc).__name__)
            raise
        return SimulationSummary(
            sensors=len(self.hosted),
            rows_written=sum(s.rows_written for s in self.hosted),
            skipped_readings=sum(s.skipped for s in self.hosted),
            errors=sum(s.errors for s in self.hosted),
            seconds=time.monotonic() - started,
            stopped_by_signal=self.stop.is_set(),
        )

    def close(self) -> None:
        """Write what is pending, TRUNCATE-checkpoint every WAL and release every lock."""
        for sensor in self.hosted:
            if sensor.pending:
                self._flush(sensor, time.monotonic(), blocking=True)

        def close_one(sensor: HostedSensor) -> None:
            try:
                sensor.writer.close()
            except Exception as exc:  # one sensor's failed checkpoint must not keep the others open
                sensor.errors += 1
                log.warning("Sensor close failed. sensor_id=%s error=%s", sensor.sensor_id, exc)

        if len(self.hosted) > 1:
            with ThreadPoolExecutor(max_workers=min(CLOSE_THREADS, len(self.hosted))) as pool:
                list(pool.map(close_one, self.hosted))
        else:
            for sensor in self.hosted:
                close_one(sensor)
        # A process that failed to open (e.g. another writer holds a lock) leaves the status file alone:
        # it may well belong to the process holding that lock.
        if self.opened and self.status.state != "failed":
            self.status.update("stopped", self.hosted, force=True)

    # --- backfill --------------------------------------------------------------------------------

    def _backfill(self) -> None:
        end_ms = self.wall_clock() * 1000
        max_rows = self.options.simulation.commit_max_rows
        self.status.update("backfilling", self.hosted, force=True)
        for sensor in self.hosted:
            stream = sensor.readings
            while not self.stop.is_set():
                due = stream.due_count(end_ms)
                if due == 0:
                    break
                self._take(sensor, min(due, max_rows))
                self._flush(sensor, time.monotonic(), blocking=True)
                self.status.update("backfilling", self.hosted)

    # --- real time -------------------------------------------------------------------------------

    def _run_realtime(self) -> None:
        options = self.options
        window = options.simulation.commit_interval_seconds
        duration = options.simulation.run_time_seconds
        mono0, wall0 = time.monotonic(), self.wall_clock()
        end = mono0 + duration if duration > 0 else float("inf")

        def mono_of(ms: float) -> float:
            return mono0 + (ms / 1000.0 - wall0)

        def wall_ms_at(mono: float) -> float:
            return (wall0 + (mono - mono0)) * 1000.0

        heap = [(mono_of(s.readings.next_ms), i) for i, s in enumerate(self.hosted)]
        heapq.heapify(heap)
        for i, sensor in enumerate(self.hosted):
            sensor.next_checkpoint = mono0 + CHECKPOINT_INTERVAL_SECONDS * (1 + i / max(1, len(self.hosted)))
        self.status.update("running", self.hosted, force=True)
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= end:
                break
            while heap and heap[0][0] <= now:
                deadline, i = heapq.heappop(heap)
                sensor = self.hosted[i]
                self._commit_due(sensor, now, wall_ms_at(now))
                if sensor.pending:
                    next_at = sensor.retry_at
                else:
                    next_at = max(deadline + window, mono_of(sensor.readings.next_ms))
                if now >= sensor.next_checkpoint:
                    sensor.writer.checkpoint("PASSIVE")
                    sensor.next_checkpoint = now + CHECKPOINT_INTERVAL_SECONDS
                heapq.heappush(heap, (next_at, i))
            self.status.update("running", self.hosted)
            if self.live is not None and self.live.due(time.monotonic()):
                self._poll_live()
            wake = min(heap[0][0] if heap else end, end, self.status.next_due)
            delay = wake - time.monotonic()
            if delay > 0:
                self.stop.wait(min(delay, MAX_SLEEP_SECONDS))
        # Readings due before the end (or the stop) are written; nothing later.
        final_ms = wall_ms_at(min(time.monotonic(), end))
        for sensor in self.hosted:
            self._commit_due(sensor, time.monotonic(), final_ms, blocking=True)

    def _commit_due(self, sensor: HostedSensor, now: float, until_ms: float, blocking: bool = False) -> None:
        if sensor.pending and now < sensor.retry_at and not blocking:
            return
        max_rows = self.options.simulation.commit_max_rows
        due = sensor.readings.due_count(until_ms)
        while due > 0:
            take = min(due, max_rows)
            self._take(sensor, take)
            due -= take
            if due > 0:
                self._flush(sensor, now, blocking=True)
        self._flush(sensor, now, blocking=blocking)

    def _take(self, sensor: HostedSensor, n: int) -> None:
        block = sensor.readings.next_block(n)
        sensor.skipped += block.skipped
        # An offline burst releases many readings at once: still at most commit_max_rows per commit.
        sensor.pending.extend(block.split(self.options.simulation.commit_max_rows))

    def _flush(self, sensor: HostedSensor, now: float, blocking: bool) -> None:
        """Write pending blocks; on a busy DB back off (sleeping only when `blocking`)."""
        while sensor.pending:
            block = sensor.pending[0]
            if sensor.writer.write(block):
                sensor.pending.pop(0)
                sensor.rows_written += len(block)
                sensor.backoff = 0.0
                continue
            sensor.errors += 1
            sensor.last_error = "database is locked"
            sensor.backoff = min(MAX_BACKOFF_SECONDS, max(0.05, sensor.backoff * 2))
            sensor.retry_at = now + sensor.backoff
            log.warning("Sensor DB busy; retrying. sensor_id=%s backoff=%.2fs", sensor.sensor_id, sensor.backoff)
            if not blocking or (self.stop.is_set() and now >= self._stop_budget_end()):
                if self.stop.is_set():
                    log.error("Sensor stopped with unwritten readings; the DB stayed locked. sensor_id=%s rows=%d",
                              sensor.sensor_id, sum(len(b) for b in sensor.pending))
                return
            time.sleep(sensor.backoff)
            now = time.monotonic()

    # --- live changes (simulator/live.py) -----------------------------------------------------------

    def _poll_live(self) -> None:
        live = self.live
        if live is None:
            return
        live.next_poll = time.monotonic() + LIVE_POLL_SECONDS
        change = live.poll_settings(self.live_document or self.options.document())
        if change is not None:
            self._apply_settings(change)
        planned = live.poll_plan()
        if planned is not None:
            self._apply_identities(planned)
        for injection in live.poll_injections():
            self._apply_injection(injection)

    def _apply_settings(self, change: SettingsChange) -> None:
        """All hosted sensors take the new settings together, or none does."""
        now = utc_now_iso()
        if change.settings is None:
            self.status.rejected_settings = RejectedSettings(digest=change.digest, errors=change.errors, at=now)
            log.warning("Settings refused; running ones kept. digest=%s errors=%s", change.digest, "; ".join(change.errors))
            self.status.next_due = 0.0
            return
        settings = change.settings
        previous = self.options
        self.options = replace(self.options, simulation=settings.simulation, anomalies=settings.anomalies,
                               devices=settings.merged_devices(self.options.devices), faults=settings.faults)
        self.live_document = settings.document
        if replace(previous, faults=settings.faults) == self.options:
            # Only the faults changed: the streams keep the readings a fault still holds back.
            for sensor in self.hosted:
                if sensor.stream is not None:
                    sensor.stream.configure_faults(settings.faults)
        else:
            self._restart_streams(self.hosted)
        self.status.applied_settings = AppliedSettings(digest=change.digest, at=now)
        self.status.rejected_settings = None
        self.status.next_due = 0.0  # report it now: `set` waits for it
        log.info("Settings applied. digest=%s readings_per_second=%g", change.digest, self.options.rate)

    def _restart_streams(self, sensors: list[HostedSensor]) -> None:
        now_ms = self.wall_clock() * 1000
        for sensor in sensors:
            sensor.stream = self._stream_for(sensor, now_ms, continue_at_ms=sensor.readings.next_ms)

    def _apply_identities(self, planned: dict) -> None:
        from sensor_manager.plan import PlannedSensor

        switched = []
        for sensor in self.hosted:
            entry = planned.get(sensor.sensor_id)
            if entry is None:
                continue
            identity = SensorIdentity.from_plan(PlannedSensor.from_dict(entry))
            if identity == sensor.spec.identity:
                continue
            sensor.writer.switch_identity(identity)
            sensor.spec = replace(sensor.spec, identity=identity)
            sensor.identity_since = utc_now_iso()
            write_identity(sensor.spec.directory / "identity.json", identity)
            switched.append(sensor)
            log.info("Sensor identity changed. sensor_id=%s firmware_version=%s from_seq=%d",
                     sensor.sensor_id, identity.firmware_version, sensor.writer.next_seq)
        if switched:
            self._restart_streams(switched)  # the anomaly profile follows the new device variant
            self.status.next_due = 0.0

    def _apply_injection(self, injection: Injection) -> None:
        targets = set(injection.sensor_ids)
        remaining = injection.requested_at_epoch + injection.duration_seconds - self.wall_clock()
        for sensor in self.hosted:
            if sensor.sensor_id in targets and remaining > 0:
                sensor.readings.inject(injection.type, remaining)
        self.status.injections = [*self.status.injections, injection.id][-MAX_REPORTED_INJECTIONS:]
        self.status.next_due = 0.0
        log.info("Anomaly injected. id=%s type=%s sensors=%d", injection.id, injection.type, len(targets))

    def _stop_budget_end(self) -> float:
        """After a stop request, a locked DB gets this long to accept the last readings."""
        if self._stop_seen is None:
            self._stop_seen = time.monotonic()
        return self._stop_seen + STOP_RETRY_SECONDS



def run_simulation(specs: list[SensorSpec], options: RunOptions, stop: threading.Event | None = None,
                   wall_clock: Callable[[], float] = time.time) -> SimulationSummary:
    """Open every sensor, backfill, run in real time until the duration ends or `stop` is set, close."""
    simulation = Simulation(specs, options, stop, wall_clock)
    try:
        simulation.open()
        return simulation.run()
    finally:
        simulation.close()
