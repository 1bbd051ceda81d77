"""The uploader loop: sources → stage → sinks, one checkpoint per sink per source, moved only on Delivered.

A cycle re-scans the data path, opens (and locks) new DBs, notices replaced ones (a new generation is a
new source; the old one, still open, is drained to its end first), then drains every source for every
sink. A batch gathers the new rows of as many sources as fit in the sink's `batch_size` rows (one part
per source, each with its own id range and app id), so a steady-state cycle is one delivery (one Delta
commit) per sink however many sources it holds, and a large backlog still drains `batch_size` rows at a
time. A sink answering Retry backs off without holding up the others; in `--once` mode its attempts are
bounded and the run exits 1.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from fleetcore.edge_db import FleetEpochMismatchError
from fleetcore.statusfiles import utc_now_iso
from uploader.batch import Batch, Lineage, Part, Rejection
from uploader.checkpoints import CheckpointStore, checkpoint_path
from uploader.deadletter import DeadLetterStore
from uploader.invocation import Invocation
from uploader.locks import SourceLocks, UploaderLock
from uploader.retry import Backoff
from uploader.settings import UploaderSettings
from uploader.shipping import ShipNamespace
from uploader.sinks import SINKS
from uploader.sinks.base import Delivered, Rejected, Retry, Sink, SinkContext
from uploader.sources.discovery import find_databases
from uploader.sources.sqlite import SourceNotReadyError, SourceUnreadableError, SqliteSource
from uploader.stages import stage_named
from uploader.status_file import SinkStatus, SourceStatus, UploaderStatus

log = logging.getLogger("uploader")
STATUS_EVERY_SECONDS = 2.0
SOURCE_ATTEMPTS_ONCE = 3
LOCKED_ELSEWHERE = "locked by another uploader"


@dataclass
class Tracked:
    """A source this uploader holds: its open DB, targets and, per sink, the confirmed position."""

    source: SqliteSource
    status: SourceStatus
    target: int | None = None  # --once: the end as of start
    positions: dict[str, int] = field(default_factory=dict)
    retiring: bool = False
    failures: int = 0  # consecutive cycles that failed to read or ship this source
    given_up: bool = False  # --once: failed SOURCE_ATTEMPTS_ONCE times; reported, no longer tried
    failed_this_cycle: bool = False  # skipped by the remaining sinks until the next cycle


def build_sinks(settings: UploaderSettings, context: SinkContext) -> list[Sink]:
    """Every enabled sink, in registry order (a setting that can never work raises ConfigError here, before any write)."""
    return [SINKS[name].build(sink_settings, context) for name, sink_settings in settings.sinks.enabled().items()]


class Uploader:
    def __init__(self, invocation: Invocation, sinks: list[Sink] | None = None):
        self.inv = invocation
        self.sinks = build_sinks(invocation.settings, invocation.sink_context) if sinks is None else sinks
        self.stage = stage_named(invocation.settings.stage)
        if self.stage.name != invocation.settings.stage:
            log.warning("Stage not implemented yet; shipping raw rows. stage=%s", invocation.settings.stage)
        self.stop_requested = threading.Event()
        root = invocation.state_root
        self.identity_lock = UploaderLock(root / "locks", invocation.uploader_id)  # before anything is written
        self.store = CheckpointStore(checkpoint_path(root, invocation.uploader_id))
        if self.store.rebuilt_from:
            log.warning("Checkpoint store was corrupt; rebuilding from the sinks. moved_to=%s", self.store.rebuilt_from)
        self.locks = SourceLocks(root / "locks")
        self.deadletters = DeadLetterStore(root / "deadletter")
        # The plan's, not any sink's: which sinks are enabled never changes what a source is called.
        self.namespace = ShipNamespace(invocation.project, invocation.fleet_epoch, invocation.ship_generation)
        bounded = not invocation.continuous
        self.backoffs = {s.name: Backoff(self._sink_settings(s).retry, bounded) for s in self.sinks}
        self.sink_status = {s.name: SinkStatus() for s in self.sinks}
        self.tracked: dict[Path, Tracked] = {}
        self.retiring: list[Tracked] = []
        self.others: dict[Path, SourceStatus] = {}  # skipped, not ready or unreadable
        self.state = "starting"
        self._status_written = 0.0

    def _sink_settings(self, sink: Sink):
        return self.inv.settings.sinks.named(sink.name)

    # -- sources -----------------------------------------------------------------------------------
    def discover(self, *, fixed_targets: bool) -> None:
        for path in find_databases(self.inv.sqlite):
            known = self.tracked.get(path)
            if known is not None:
                if known.source.is_replaced():
                    known.retiring = True
                    known.source.retire()
                    self.retiring.append(self.tracked.pop(path))
                    log.info("Sensor DB replaced; draining the old generation first. source=%s", known.status.source)
                elif known.source.is_reset_in_place():
                    # The old generation's rows are gone from this file: nothing left to drain.
                    log.warning("Sensor DB reset in place; shipping it as a new generation. source=%s lost_after=%s",
                                known.status.source, known.positions)
                    self.tracked.pop(path).source.close()
                else:
                    continue
            self._open(path, fixed_targets)

    def _open(self, path: Path, fixed_targets: bool) -> None:
        relpath = path.relative_to(self.inv.data_root).as_posix() if path.is_relative_to(self.inv.data_root) else path.name
        if not self.locks.acquire(path):
            self.others[path] = SourceStatus(source=relpath, skipped=LOCKED_ELSEWHERE)
            return
        source = None
        try:
            source = SqliteSource(path, self.inv.data_root, naive_local=self.inv.settings.naive_timestamps == "local")
            status = SourceStatus(source=source.relpath, generation=source.generation, sensor_id=source.sensor_id(),
                                  shape=source.shape.name, end_id=source.end_id(), locked=True)
        except (SourceNotReadyError, SourceUnreadableError) as exc:
            if source is not None:
                source.close()
            if not any(t.source.path == path for t in self.retiring):  # still draining the old generation
                self.locks.release(path)
            if isinstance(exc, SourceNotReadyError):
                self.others[path] = SourceStatus(source=relpath, skipped=f"not ready: {exc}")
            else:
                self.others[path] = SourceStatus(source=relpath, error=str(exc))
                log.warning("Sensor DB unreadable; skipping it. source=%s error=%s", relpath, exc)
            return
        if source.fleet_epoch not in (None, self.inv.fleet_epoch) and not self.inv.development:
            source.close()
            self.locks.release(path)
            mismatch = FleetEpochMismatchError(path, source.fleet_epoch, self.inv.fleet_epoch)
            if not self.inv.continuous:
                raise mismatch  # --once refuses before shipping anything under the wrong epoch
            self.others[path] = SourceStatus(source=relpath, error=str(mismatch))
            log.error("Sensor DB belongs to another fleet epoch; not shipping it. source=%s error=%s", relpath, mismatch)
            return
        self.others.pop(path, None)
        self.tracked[path] = Tracked(source, status, target=status.end_id if fixed_targets else None)

    def _resume(self, sink: Sink, app_id: str) -> int:
        """The sink's own durable position wins over the local cache, which is refreshed from it."""
        try:
            held = sink.resume_from(app_id)
        except Exception as exc:  # noqa: BLE001 - an unreachable sink resumes from the cache and retries later
            log.warning("Sink position unavailable; using the local checkpoint. sink=%s error=%s", sink.name, exc)
            held = None
        if held is None:
            return self.store.get(sink.name, app_id) or 0
        self.store.set(sink.name, app_id, held)
        return held

    # -- shipping ----------------------------------------------------------------------------------
    def _part(self, tracked: Tracked, sink: Sink, after: int, upto: int) -> Part:
        source = tracked.source
        lineage = Lineage(self.inv.project, self.inv.fleet_epoch, source.relpath, source.generation,
                          self.inv.uploader_id, city_fallback=_directory_city(source.path))

        def chunks(rejected: list[Rejection]):
            for chunk in source.read(after, upto):
                kept, dropped = self.stage.apply(chunk, lineage)
                rejected.extend(dropped)
                if kept is not None:
                    yield kept

        def on_rejected(rejections: list[Rejection]) -> None:
            self.deadletters.write(sink.name, source=source.relpath, generation=source.generation,
                                   stage=self.stage.name, rejections=rejections,
                                   raw_rows=source.raw_rows([r.source_id for r in rejections]))

        return Part(self.namespace.app_id(source.key), after, upto, lineage, chunks, on_rejected)

    def _plan(self, sink: Sink, pending: list[Tracked], limit: int, solo: bool) -> tuple[list[Part], dict[str, Tracked]]:
        """The next batch: a part for each source behind its end, in order, until `limit` rows are planned."""
        parts: list[Part] = []
        owners: dict[str, Tracked] = {}
        budget = limit
        for tracked in list(pending):
            if budget <= 0 or (solo and parts):
                break
            position, end = tracked.positions[sink.name], tracked.status.end_id
            if position >= end or tracked.failed_this_cycle:
                pending.remove(tracked)
                continue
            try:
                upto = tracked.source.plan_upto(position, end, budget)
            except Exception as exc:  # noqa: BLE001 - one poisoned source must not stop the others
                self._source_failed(tracked, _describe(exc))
                pending.remove(tracked)
                continue
            part = self._part(tracked, sink, position, upto)
            parts.append(part)
            owners[part.app_id] = tracked
            budget -= min(budget, upto - position)  # ids are unique and increasing: at most upto - position rows
        return parts, owners

    def drain(self, sink: Sink, sources: list[Tracked]) -> None:
        """Ship every source up to its `status.end_id` for one sink, several sources per batch."""
        backoff, status = self.backoffs[sink.name], self.sink_status[sink.name]
        batch_rows = min(self._sink_settings(sink).batch_size, self.inv.settings.read_batch_rows)
        pending = list(sources)
        solo = False  # after a refused multi-source batch: one source per batch, so only its rows are dead-lettered
        while pending and not self.stop_requested.is_set() and not backoff.is_waiting() and not status.failing_permanently:
            parts, owners = self._plan(sink, pending, batch_rows, solo)
            if not parts:
                break
            batch = Batch(parts)
            try:
                outcome = sink.write(batch)
            except Exception as exc:  # noqa: BLE001 - a source failed while it was read: only it stops
                for part in [p for p in parts if p.source_error is not None] or parts:
                    self._source_failed(owners[part.app_id], _describe(part.source_error or exc))
                continue
            if isinstance(outcome, Delivered):
                if any(outcome.positions[part.app_id] < part.after for part in parts):
                    self._sink_lost_rows(sink, parts, outcome)
                    return
                for part in parts:
                    position = outcome.positions[part.app_id]
                    self.store.set(sink.name, part.app_id, position)
                    owners[part.app_id].positions[sink.name] = position
                backoff.record_success()
                status.rows_shipped += outcome.rows
                status.dead_lettered += len(batch.rejected)
                status.last_success = utc_now_iso()
            elif isinstance(outcome, Retry):
                self._failed(sink, outcome.reason)
            elif isinstance(outcome, Rejected):
                if len(parts) > 1:
                    log.warning("Sink rejected a batch of several sources; retrying them one by one. sink=%s sources=%d error=%s",
                                sink.name, len(parts), outcome.reason)
                    solo = True
                else:
                    [part] = parts
                    self._rejected(owners[part.app_id], sink, part, outcome.reason)
                    owners[part.app_id].positions[sink.name] = part.upto
            self._maybe_write_status()

    def _sink_lost_rows(self, sink: Sink, parts: list[Part], outcome: Delivered) -> None:
        """The sink holds less than this uploader confirmed (its lake was deleted or emptied): start over from it.

        This sink's positions are read again next cycle, so it gets exactly what a fresh uploader would
        send it; the other sinks keep theirs."""
        for part in parts:
            if outcome.positions[part.app_id] < part.after:
                log.warning("Sink holds less of a source than the checkpoint (lake deleted or emptied?); shipping again "
                            "from the sink's position. sink=%s source=%s checkpoint=%d position=%d",
                            sink.name, part.lineage.source, part.after, outcome.positions[part.app_id])
        for tracked in list(self.retiring) + list(self.tracked.values()):
            tracked.positions.pop(sink.name, None)

    def _failed(self, sink: Sink, reason: str) -> None:
        backoff, status = self.backoffs[sink.name], self.sink_status[sink.name]
        backoff.record_failure()
        status.retries += 1
        status.last_error = reason
        if backoff.is_exhausted():
            status.failing_permanently = True
            log.error("Sink failing after its retry budget. sink=%s attempts=%d error=%s", sink.name, backoff.failures, reason)
        else:
            log.warning("Upload retry scheduled. sink=%s attempt=%d error=%s", sink.name, backoff.failures, reason)

    def _rejected(self, tracked: Tracked, sink: Sink, part: Part, reason: str) -> None:
        source = tracked.source
        raw = source.raw_rows(list(range(part.after + 1, part.upto + 1)))
        rejections = [Rejection(source_id, f"rejected by {sink.name}: {reason}") for source_id in sorted(raw)]
        self.deadletters.write(sink.name, source=source.relpath, generation=source.generation,
                               stage=self.stage.name, rejections=rejections, raw_rows=raw)
        self.store.set(sink.name, part.app_id, part.upto)
        status = self.sink_status[sink.name]
        status.dead_lettered += len(rejections)
        status.last_error = reason
        log.error("Sink rejected a batch; rows dead-lettered. sink=%s source=%s rows=%d error=%s",
                  sink.name, source.relpath, len(rejections), reason)
        self._record_settled(sink, part)

    def _record_settled(self, sink: Sink, part: Part) -> None:
        """Move the sink's own position past dead-lettered rows (an empty part), or it would hand them back."""
        empty = Part(part.app_id, part.after, part.upto, part.lineage, lambda rejected: iter(()))
        try:
            outcome = sink.write(Batch([empty]))
        except Exception as exc:  # noqa: BLE001 - reported below like any other refusal
            outcome = Retry(_describe(exc))
        if not isinstance(outcome, Delivered):
            log.warning("Sink did not record the dead-lettered range; they may be read and dead-lettered again. "
                        "sink=%s source=%s error=%s", sink.name, part.lineage.source, getattr(outcome, "reason", outcome))

    def cycle(self, *, fixed_targets: bool) -> None:
        """Discover, then drain retiring sources and every held source for every sink."""
        shipped_before = {name: status.rows_shipped for name, status in self.sink_status.items()}
        self._drain_all(fixed_targets)
        for name, status in self.sink_status.items():
            if status.rows_shipped > shipped_before[name]:
                log.info("Rows shipped. sink=%s rows=%d sources=%d total=%d", name, status.rows_shipped - shipped_before[name],
                         len(self.tracked), status.rows_shipped)

    def _drain_all(self, fixed_targets: bool) -> None:
        self.discover(fixed_targets=fixed_targets)
        work: list[Tracked] = []
        for tracked in list(self.retiring) + list(self.tracked.values()):
            tracked.failed_this_cycle = False
            app_id = self.namespace.app_id(tracked.source.key)
            for sink in self.sinks:  # a sink added later, or one that lost rows, resumes from what it holds
                if sink.name not in tracked.positions:
                    tracked.positions[sink.name] = self._resume(sink, app_id)
            if tracked.given_up:
                continue
            try:
                tracked.status.end_id = tracked.target if tracked.target is not None else tracked.source.end_id()
            except Exception as exc:  # noqa: BLE001 - one poisoned source must not stop the others
                self._source_failed(tracked, _describe(exc))
                continue
            work.append(tracked)
        for sink in self.sinks:
            self.drain(sink, [t for t in work if not t.failed_this_cycle])
        for tracked in work:
            if not tracked.failed_this_cycle:
                tracked.status.error, tracked.failures = None, 0
        for tracked in list(self.retiring):
            if all(tracked.positions.get(s.name, 0) >= tracked.status.end_id for s in self.sinks):
                self.retiring.remove(tracked)
                tracked.source.close()

    def _source_failed(self, tracked: Tracked, error: str) -> None:
        tracked.failed_this_cycle = True
        tracked.status.error = error
        tracked.failures += 1
        if not self.inv.continuous and tracked.failures >= SOURCE_ATTEMPTS_ONCE:
            tracked.given_up = True
            log.error("Giving up on a source for this run. source=%s attempts=%d error=%s",
                      tracked.status.source, tracked.failures, error)
        else:
            log.warning("Shipping a source failed; will retry. source=%s attempt=%d error=%s",
                        tracked.status.source, tracked.failures, error)

    def is_done(self) -> bool:
        """--once: every sink reached every source's target, or gave up."""
        for tracked in self.tracked.values():
            for sink in self.sinks:
                if tracked.given_up:
                    continue
                if tracked.positions.get(sink.name, 0) < (tracked.target or 0) and not self.sink_status[sink.name].failing_permanently:
                    return False
        return True

    def sources_locked_elsewhere(self) -> list[str]:
        """Sources this run found but could not ship because another running uploader holds them."""
        return [status.source for status in self.others.values() if status.skipped == LOCKED_ELSEWHERE]

    def succeeded(self) -> bool:
        return (all(not s.failing_permanently for s in self.sink_status.values())
                and all(t.positions.get(s.name, 0) >= (t.target or 0) for t in self.tracked.values() for s in self.sinks)
                and not any(o.error for o in self.others.values())
                and not any(t.status.error for t in self.tracked.values()))

    # -- running -----------------------------------------------------------------------------------
    def _log_start(self, mode: str) -> None:
        log.info("Uploader started. uploader_id=%s mode=%s sinks=%s data=%s lake=%s project=%s fleet_epoch=%d",
                 self.inv.uploader_id, mode, ",".join(s.name for s in self.sinks), self.inv.sqlite, self.inv.table_uri,
                 self.inv.project, self.inv.fleet_epoch)

    def run_once(self) -> bool:
        self._log_start("once")
        self.state = "running"
        self.write_status()
        while True:
            try:
                self.cycle(fixed_targets=True)
            except FleetEpochMismatchError:
                self.state = "failing"  # not left "running" for the monitor
                self.write_status()
                raise
            if self.is_done() or self.stop_requested.is_set():
                break
            waits = [b.not_before - time.monotonic() for b in self.backoffs.values() if b.is_waiting()]
            waits += [0.2 * t.failures for t in self.tracked.values() if t.failures and not t.given_up]
            self.stop_requested.wait(max(0.05, min(waits)) if waits else 0.05)
        ok = self.succeeded()
        self.state = "stopped" if ok else "failing"
        self.write_status()
        return ok

    def run_continuous(self) -> None:
        self._log_start(f"continuous every {self.inv.interval:g} s")
        self.state = "idle"
        self.write_status()
        self.stop_requested.wait(random.uniform(0, self.inv.interval))
        while not self.stop_requested.is_set():
            self.state = "running"
            started = time.monotonic()
            self.cycle(fixed_targets=False)
            failing = any(s.failing_permanently or self.backoffs[n].failures for n, s in self.sink_status.items())
            self.state = "failing" if failing else "idle"
            self.write_status()
            self.stop_requested.wait(max(0.0, self.inv.interval - (time.monotonic() - started)))
        self.state = "stopped"
        self.write_status()
        log.info("Uploader stopped. uploader_id=%s", self.inv.uploader_id)

    def close(self) -> None:
        for tracked in list(self.tracked.values()) + self.retiring:
            tracked.source.close()
        self.locks.release_all()
        self.store.close()
        self.identity_lock.release()

    # -- status ------------------------------------------------------------------------------------
    def _maybe_write_status(self) -> None:
        if time.monotonic() - self._status_written >= STATUS_EVERY_SECONDS:
            self.write_status()

    def write_status(self) -> None:
        now = time.time()
        sources: list[SourceStatus] = []
        for status in self.sink_status.values():
            status.lag_rows, status.lag_seconds = 0, 0.0
        for tracked in list(self.retiring) + list(self.tracked.values()):
            tracked.status.positions = dict(tracked.positions)
            for sink in self.sinks:
                position, status = tracked.positions.get(sink.name, 0), self.sink_status[sink.name]
                behind = max(0, tracked.status.end_id - position)
                status.lag_rows += behind
                if behind:
                    oldest = _safe(partial(tracked.source.timestamp_after, position))
                    if oldest is not None:
                        status.lag_seconds = max(status.lag_seconds, round(now - oldest, 3))
            sources.append(tracked.status)
        sources.extend(self.others.values())
        UploaderStatus(
            name=f"uploader-{self.inv.uploader_id}", uploader_id=self.inv.uploader_id, state=self.state,
            interval_seconds=self.inv.interval, sinks=self.sink_status, sources=sources, project=self.inv.project,
            fleet_epoch=self.inv.fleet_epoch, mode="continuous" if self.inv.continuous else "once",
            lake=str(self.inv.lake), data=str(self.inv.sqlite),
        ).write(self.inv.status_path)
        self._status_written = time.monotonic()


def _directory_city(db_path: Path) -> str:
    """The City of data/<City>/<CODE>/sensor_data.db: the city when a DB's location says nothing."""
    return db_path.parent.parent.name or "unknown"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SourceUnreadableError):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc}"


def _safe(function):
    try:
        return function()
    except SourceUnreadableError:
        return None
