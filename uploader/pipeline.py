"""The uploader loop: sources → stage → sinks, one checkpoint per sink per source, moved only on Delivered.

`Uploader` wires three jobs and runs them once or continuously: `tracking.SourceTracker` (the sources
it holds: a cycle re-scans the data path, opens and locks new DBs, notices replaced ones — a new
generation is a new source; the old one, still open, is drained to its end first), one
`delivery.SinkDelivery` per sink (resume, plan a batch of parts, drain, act on Delivered / Retry /
Rejected) and `reporting.StatusReporter` (the status file). A batch gathers the new rows of as many
sources as fit in the sink's `batch_size` rows, so a steady-state cycle is one delivery (one Delta
commit) per sink however many sources it holds, and a large backlog still drains `batch_size` rows at
a time. A sink answering Retry backs off without holding up the others; in `--once` mode its attempts
are bounded and the run exits 1. App ids come from the plan's ship namespace, never from the sinks.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from pathlib import Path

from fleetcore.edge_db import FleetEpochMismatchError
from uploader.checkpoints import CheckpointStore, checkpoint_path
from uploader.deadletter import DeadLetterStore
from uploader.delivery import SinkDelivery
from uploader.invocation import Invocation
from uploader.locks import SourceLocks, UploaderLock
from uploader.reporting import StatusReporter
from uploader.settings import UploaderSettings
from uploader.shipping import ShipNamespace
from uploader.sinks import SINKS
from uploader.sinks.base import Sink, SinkContext
from uploader.stages import stage_named
from uploader.status_file import SourceStatus
from uploader.tracking import SourceTracker, Tracked, describe

log = logging.getLogger("uploader")


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
        self.sources = SourceTracker(invocation, SourceLocks(root / "locks"))
        # The plan's, not any sink's: which sinks are enabled never changes what a source is called.
        self.namespace = ShipNamespace(invocation.project, invocation.fleet_epoch, invocation.ship_generation)
        deadletters = DeadLetterStore(root / "deadletter")
        self.deliveries = [SinkDelivery(sink, invocation, stage=self.stage, store=self.store, deadletters=deadletters,
                                        namespace=self.namespace, sources=self.sources,
                                        stop_requested=self.stop_requested, on_progress=self._maybe_write_status)
                           for sink in self.sinks]
        self.backoffs = {d.sink.name: d.backoff for d in self.deliveries}
        self.sink_status = {d.sink.name: d.status for d in self.deliveries}
        self.reporter = StatusReporter(invocation, self.sources, self.sink_status)
        self.state = "starting"

    @property
    def tracked(self) -> dict[Path, Tracked]:
        return self.sources.tracked

    @property
    def retiring(self) -> list[Tracked]:
        return self.sources.retiring

    @property
    def others(self) -> dict[Path, SourceStatus]:
        return self.sources.others

    # -- a cycle -----------------------------------------------------------------------------------
    def cycle(self, *, fixed_targets: bool) -> None:
        """Discover, then drain retiring sources and every held source for every sink."""
        shipped_before = {name: status.rows_shipped for name, status in self.sink_status.items()}
        self._drain_all(fixed_targets)
        for name, status in self.sink_status.items():
            if status.rows_shipped > shipped_before[name]:
                log.info("Rows shipped. sink=%s rows=%d sources=%d total=%d", name, status.rows_shipped - shipped_before[name],
                         len(self.tracked), status.rows_shipped)

    def _drain_all(self, fixed_targets: bool) -> None:
        self.sources.discover(fixed_targets=fixed_targets)
        work: list[Tracked] = []
        for tracked in self.sources.held():
            tracked.failed_this_cycle = False
            app_id = self.namespace.app_id(tracked.source.key)
            for delivery in self.deliveries:  # a sink added later, or one that lost rows, resumes from what it holds
                if delivery.sink.name not in tracked.positions:
                    tracked.positions[delivery.sink.name] = delivery.resume(app_id)
            if tracked.given_up:
                continue
            try:
                tracked.status.end_id = tracked.target if tracked.target is not None else tracked.source.end_id()
            except Exception as exc:  # noqa: BLE001 - one poisoned source must not stop the others
                self.sources.source_failed(tracked, describe(exc))
                continue
            work.append(tracked)
        for delivery in self.deliveries:
            delivery.drain([t for t in work if not t.failed_this_cycle])
        for tracked in work:
            if not tracked.failed_this_cycle:
                tracked.status.error, tracked.failures = None, 0
        self.sources.retire_drained([s.name for s in self.sinks])

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
        return self.sources.locked_elsewhere()

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
        self.sources.close()
        self.store.close()
        for sink in self.sinks:  # a sink holding connections (Cosmos DB's client) releases them
            closing = getattr(sink, "close", None)
            if closing is not None:
                closing()
        self.identity_lock.release()

    # -- status ------------------------------------------------------------------------------------
    def _maybe_write_status(self) -> None:
        self.reporter.maybe_write(self.state)

    def write_status(self) -> None:
        self.reporter.write(self.state)
