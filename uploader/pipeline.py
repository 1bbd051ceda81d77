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
from dataclasses import replace
from pathlib import Path

from fleetcore.edge_db import FleetEpochMismatchError
from fleetcore.errors import SensorManagerError
from fleetcore.livesettings import AppliedSettings, RejectedSettings
from fleetcore.statusfiles import utc_now_iso
from uploader.checkpoints import CheckpointStore, checkpoint_path
from uploader.deadletter import DeadLetterStore
from uploader.delivery import SinkDelivery
from uploader.invocation import Invocation
from uploader.locks import SourceLocks, UploaderLock
from uploader.reload import Change, SettingsWatcher, StageSwitches, fixed_changes
from uploader.reporting import StatusReporter
from uploader.shipping import ShipNamespace
from uploader.sinks import SINKS
from uploader.sinks.base import Sink
from uploader.stages import Stage, stage_named
from uploader.status_file import SourceStatus
from uploader.tracking import SourceTracker, Tracked, describe

log = logging.getLogger("uploader")


def build_sink(invocation: Invocation, name: str, stage: str | None = None) -> Sink:
    """One sink built for its stage (a setting that can never work raises ConfigError here, before any write)."""
    context = invocation.sink_context_for(name)
    return SINKS[name].build(invocation.settings.sinks.named(name), replace(context, stage=stage or context.stage))


def build_sinks(invocation: Invocation) -> list[Sink]:
    """Every enabled sink, in registry order."""
    return [build_sink(invocation, name) for name in invocation.settings.sinks.enabled()]


class Uploader:
    def __init__(self, invocation: Invocation, sinks: list[Sink] | None = None):
        self.inv = invocation
        self.sinks = build_sinks(invocation) if sinks is None else sinks
        self.stop_requested = threading.Event()
        self.boundary_requested = threading.Event()
        root = invocation.state_root
        self.identity_lock = UploaderLock(root / "locks", invocation.uploader_id)  # before anything is written
        self.store = CheckpointStore(checkpoint_path(root, invocation.uploader_id))
        if self.store.rebuilt_from:
            log.warning("Checkpoint store was corrupt; rebuilding from the sinks. moved_to=%s", self.store.rebuilt_from)
        self.sources = SourceTracker(invocation, SourceLocks(root / "locks"))
        # The plan's, not any sink's: which sinks are enabled never changes what a source is called.
        self.namespace = ShipNamespace(invocation.project, invocation.fleet_epoch, invocation.ship_generation)
        self.deadletters = DeadLetterStore(root / "deadletter")
        self.switches = StageSwitches(self.sources)
        self.deliveries = [self._delivery(sink) for sink in self.sinks]
        self.backoffs = {d.sink.name: d.backoff for d in self.deliveries}
        self.sink_status = {d.sink.name: d.status for d in self.deliveries}
        self.reporter = StatusReporter(invocation, self.sources, self.sink_status, self.switches.recent)
        # Only a continuous uploader follows its settings file; --once ships what it started with.
        watched = invocation.settings_file if invocation.continuous else None
        self.watcher = SettingsWatcher(watched, invocation.settings_digest) if watched else None
        if invocation.settings_digest:
            self.reporter.applied = AppliedSettings(digest=invocation.settings_digest, at=utc_now_iso())
        self._change: Change | None = None
        self.state = "starting"

    def _delivery(self, sink: Sink) -> SinkDelivery:
        """A sink's delivery; a sink that received another stage when this uploader last ran switches at the first cycle."""
        stage = self.inv.settings.stage_of(sink.name)
        last = self.store.get_stage(sink.name)
        if last is not None and last != stage and (last == "aggregated") != (stage == "aggregated"):
            # Another table: positions come from the one the old stage wrote, then the new one takes them over.
            old_sink = build_sink(self.inv, sink.name, last)
            delivery = self._new_delivery(old_sink, stage_named(last, self.inv.settings, self.inv.state_root))
            self.switches.pending[sink.name] = (sink, stage_named(stage, self.inv.settings, self.inv.state_root))
            return delivery
        delivery = self._new_delivery(sink, stage_named(stage, self.inv.settings, self.inv.state_root))
        if last is not None and last != stage:
            self.switches.pending[sink.name] = (sink, delivery.stage)
        return delivery

    def _new_delivery(self, sink: Sink, stage) -> SinkDelivery:
        delivery = SinkDelivery(sink, self.inv, stage=stage, store=self.store, deadletters=self.deadletters,
                                namespace=self.namespace, sources=self.sources, stop_requested=self.stop_requested,
                                on_progress=self._on_batch, boundary_requested=self.boundary_requested)
        delivery.status.stage = stage.name
        if self.store.get_stage(sink.name) is None:
            self.store.set_stage(sink.name, stage.name)
        return delivery

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
        for delivery in self.deliveries:  # a stage switch found at start, now that positions are known
            if delivery.sink.name in self.switches.pending:
                sink, stage = self.switches.pending[delivery.sink.name]
                try:
                    delivery.carry_positions(sink)
                except Exception as exc:  # noqa: BLE001 - the old stage keeps shipping; tried again next cycle
                    log.warning("Stage switch postponed; the sink could not take the positions. sink=%s error=%s",
                                delivery.sink.name, describe(exc))
                    continue
                del self.switches.pending[delivery.sink.name]
                self.switches.switch(delivery, sink, stage, self.inv)
                self.sinks[:] = [d.sink for d in self.deliveries]
        for tracked in self.sources.held():
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
        self._wait(random.uniform(0, self.inv.interval))
        while not self.stop_requested.is_set():
            self.state = "running"
            started = time.monotonic()
            self.cycle(fixed_targets=False)
            failing = any(s.failing_permanently or self.backoffs[n].failures for n, s in self.sink_status.items())
            self.state = "failing" if failing else "idle"
            self.write_status()
            self._wait(self.inv.interval - (time.monotonic() - started))
        self.state = "stopped"
        self.write_status()
        log.info("Uploader stopped. uploader_id=%s", self.inv.uploader_id)

    def _wait(self, seconds: float) -> None:
        """Sleep until the next cycle, applying a settings change at once (a change ends the wait)."""
        deadline = time.monotonic() + seconds
        while not self.stop_requested.is_set():
            self._notice_settings()
            if self.boundary_requested.is_set():
                self._apply_pending_settings()
                return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.stop_requested.wait(min(left, 0.1))

    # -- settings changes (python -m uploader --config FILE) ----------------------------------------
    def _notice_settings(self) -> None:
        """A new settings file content: stop at the next batch boundary to apply it."""
        if self.watcher is None or self.boundary_requested.is_set():
            return
        change = self.watcher.poll()
        if change is not None:
            self._change = change
            self.boundary_requested.set()

    def _apply_pending_settings(self) -> None:
        change, self._change = self._change, None
        self.boundary_requested.clear()
        if change is not None:
            self.apply_settings(change)
            self.write_status()

    def apply_settings(self, change: Change) -> bool:
        """Apply a new settings file content's reloadable keys, all or nothing; False (and why, in the status) when refused."""
        errors = list(change.errors or [])
        if change.settings is not None:
            errors += fixed_changes((self.inv.settings, self.inv.settings_project), (change.settings, change.project))
        plan: list[tuple[str, Sink | None, Stage | None]] = []
        if not errors:
            assert change.settings is not None
            invocation = replace(self.inv, settings=change.settings, interval=change.settings.interval_seconds
                                 if change.settings.interval_seconds != self.inv.settings.interval_seconds else self.inv.interval)
            try:
                plan = self._settings_plan(invocation)
            except SensorManagerError as exc:
                errors.append(str(exc))
        if errors:
            self.reporter.rejected = RejectedSettings(digest=change.digest, errors=errors, at=utc_now_iso())
            log.error("Settings change rejected; nothing changed. digest=%s errors=%s", change.digest, " | ".join(errors))
            return False
        self._apply(invocation, plan)
        self.reporter.applied = AppliedSettings(digest=change.digest, at=utc_now_iso())
        self.reporter.rejected = None
        log.info("Settings applied. digest=%s", change.digest)
        return True

    def _settings_plan(self, invocation) -> list[tuple[str, Sink | None, Stage | None]]:
        """Per sink whose enablement or stage changes: (name, its new sink or None to drop it, its stage).

        Everything that can fail happens here, before anything changes: sinks are built and a sink
        switching tables records its positions in the new one (harmless if the change is then refused)."""
        plan: list[tuple[str, Sink | None, Stage | None]] = []
        running = {d.sink.name: d for d in self.deliveries}
        for name in SINKS:
            enabled = invocation.settings.sinks.named(name).enabled
            stage = invocation.settings.stage_of(name)
            if not enabled and name in running:
                plan.append((name, None, None))
            elif enabled and (name not in running or running[name].stage.name != stage):
                sink = build_sink(invocation, name)
                if name in running:
                    try:
                        running[name].carry_positions(sink)
                    except Exception as exc:  # noqa: BLE001 - refused like any other change that cannot work now
                        raise SensorManagerError(f"uploader.sinks.{name}.stage: the {name} sink could not take over "
                                                 f"its positions for {stage} ({describe(exc)})") from None
                plan.append((name, sink, stage_named(stage, invocation.settings, invocation.state_root)))
        return plan

    def _apply(self, invocation: Invocation, plan: list[tuple[str, Sink | None, Stage | None]]) -> None:
        self.inv = invocation
        self.reporter.inv = invocation
        running = {d.sink.name: d for d in self.deliveries}
        for delivery in self.deliveries:
            delivery.reconfigure(invocation)
        for name, sink, stage in plan:
            if sink is None:
                self.deliveries.remove(running.pop(name))
                del self.sink_status[name], self.backoffs[name]
                log.info("Sink disabled. sink=%s", name)
            elif name in running:
                assert stage is not None
                self.switches.switch(running[name], sink, stage, invocation)
            else:
                assert stage is not None
                delivery = self._new_delivery(sink, stage)
                self.deliveries.append(delivery)
                self.sink_status[name], self.backoffs[name] = delivery.status, delivery.backoff
                log.info("Sink enabled. sink=%s stage=%s", name, stage.name)
        order = list(SINKS)
        self.deliveries.sort(key=lambda d: order.index(d.sink.name))
        self.sinks[:] = [d.sink for d in self.deliveries]

    def close(self) -> None:
        self.sources.close()
        self.store.close()
        for sink in self.sinks:  # a sink holding connections (Cosmos DB's client) releases them
            closing = getattr(sink, "close", None)
            if closing is not None:
                closing()
        self.identity_lock.release()

    # -- status ------------------------------------------------------------------------------------
    def _on_batch(self) -> None:
        self._notice_settings()
        self.reporter.maybe_write(self.state)

    def write_status(self) -> None:
        self.reporter.write(self.state)
