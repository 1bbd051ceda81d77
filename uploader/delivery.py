"""Per-sink delivery: resume from the sink, plan a batch's parts, drain, and act on Delivered / Retry / Rejected.

A batch gathers the new rows of as many sources as fit in the sink's `batch_size` rows (one part per
source, each with its own id range and app id). Only Delivered moves a checkpoint; Retry backs this sink
off without holding up the others; Rejected rows are dead-lettered and the sink's position moved past them.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from fleetcore.statusfiles import utc_now_iso
from uploader.batch import Batch, Lineage, Part, Rejection
from uploader.checkpoints import CheckpointStore
from uploader.deadletter import DeadLetterStore
from uploader.invocation import Invocation
from uploader.retry import Backoff
from uploader.shipping import ShipNamespace
from uploader.sinks.base import Delivered, Rejected, Retry, Sink
from uploader.stages import Stage
from uploader.stages.aggregate import AggregateStage, Windows
from uploader.status_file import SinkStatus
from uploader.tracking import SourceTracker, Tracked, describe

log = logging.getLogger("uploader")


class SinkDelivery:
    """One sink's side of the uploader: its backoff, its status and every write to it."""

    def __init__(self, sink: Sink, invocation: Invocation, *, stage: Stage, store: CheckpointStore,
                 deadletters: DeadLetterStore, namespace: ShipNamespace, sources: SourceTracker,
                 stop_requested: threading.Event, on_progress: Callable[[], None],
                 boundary_requested: threading.Event | None = None):
        self.sink = sink
        self.inv = invocation
        self.settings = invocation.settings.sinks.named(sink.name)
        self.stage = stage
        self.store = store
        self.deadletters = deadletters
        self.namespace = namespace
        self.sources = sources
        self.stop_requested = stop_requested
        self.boundary_requested = boundary_requested or threading.Event()  # a settings change waits at the next batch
        self.on_progress = on_progress
        self.backoff = Backoff(self.settings.retry, not invocation.continuous)
        self.status = SinkStatus()
        self.windows: dict[str, Windows] = {}  # aggregated: each source's state at this sink's position
        self._folding: dict[str, Windows] = {}  # aggregated: the state after the batch in flight

    def positions(self) -> dict[str, int]:
        """This sink's confirmed position per held source (by app id)."""
        return {self.namespace.app_id(t.source.key): t.positions[self.sink.name]
                for t in self.sources.held() if self.sink.name in t.positions}

    def carry_positions(self, sink: Sink) -> None:
        """Before a switch to `sink` (this sink rebuilt for another stage): have it hold this sink's positions.

        A no-op for the same table; a stage writing another table (aggregated ↔ readings) records them
        there first, so the new stage starts exactly where the old one stopped. Raises what the sink raises."""
        behind = {app_id: position for app_id, position in self.positions().items()
                  if position > 0 and (sink.resume_from(app_id) or 0) < position}
        if behind:
            sink.mark_shipped(behind)

    def switch(self, sink: Sink, stage: Stage, invocation: Invocation) -> None:
        """From the next batch on, write `stage`'s output to `sink` (after `carry_positions(sink)`)."""
        positions = self.positions()
        self.sink, self.stage, self.inv = sink, stage, invocation
        self.settings = invocation.settings.sinks.named(sink.name)
        self.windows.clear()
        if isinstance(stage, AggregateStage):  # it starts at the switch, with nothing open
            for app_id, position in positions.items():
                self.store.set_windows(sink.name, app_id, Windows(position).to_bytes())
        self.store.set_stage(sink.name, stage.name)

    def reconfigure(self, invocation: Invocation) -> None:
        """New reloadable settings (batch size) from the next batch on."""
        self.inv = invocation
        self.settings = invocation.settings.sinks.named(self.sink.name)

    def resume(self, app_id: str) -> int:
        """The sink's own durable position wins over the local cache, which is refreshed from it."""
        sink = self.sink
        try:
            held = sink.resume_from(app_id)
        except Exception as exc:  # noqa: BLE001 - an unreachable sink resumes from the cache and retries later
            log.warning("Sink position unavailable; using the local checkpoint. sink=%s error=%s", sink.name, exc)
            held = None
        if held is None:
            return self.store.get(sink.name, app_id) or 0
        self.store.set(sink.name, app_id, held)
        return held

    def _part(self, tracked: Tracked, after: int, upto: int) -> Part:
        source = tracked.source
        lineage = Lineage(self.inv.project, self.inv.fleet_epoch, source.relpath, source.generation,
                          self.inv.uploader_id, city_fallback=_directory_city(source.path))

        stage = self.stage
        if isinstance(stage, AggregateStage):
            folding = self._windows_at(tracked, after, lineage).copy()
            self._folding[self.namespace.app_id(source.key)] = folding

            def chunks(rejected: list[Rejection]):
                for chunk in source.read(after, upto):
                    emitted, dropped = stage.fold(folding, chunk, lineage)
                    rejected.extend(dropped)
                    if emitted is not None:
                        yield emitted
                folding.position = upto
        else:
            def chunks(rejected: list[Rejection]):
                for chunk in source.read(after, upto):
                    kept, dropped = stage.apply(chunk, lineage)
                    rejected.extend(dropped)
                    if kept is not None:
                        yield kept

        def on_rejected(rejections: list[Rejection]) -> None:
            self.deadletters.write(self.sink.name, source=source.relpath, generation=source.generation,
                                   stage=stage.name, rejections=rejections,
                                   raw_rows=source.raw_rows([r.source_id for r in rejections]))

        return Part(self.namespace.app_id(source.key), after, upto, lineage, chunks, on_rejected)

    def _windows_at(self, tracked: Tracked, position: int, lineage: Lineage) -> Windows:
        """The aggregation state at `position`: kept, else saved, else folded again from the edge DB (the buffer)."""
        app_id = self.namespace.app_id(tracked.source.key)
        known = self.windows.get(app_id)
        if known is not None and known.position == position:
            return known
        saved = self.store.get_windows(self.sink.name, app_id)
        windows = Windows.from_bytes(saved) if saved else Windows()
        if windows.position > position:  # the sink holds less than the saved state: fold from the start
            windows = Windows()
        if windows.position < position:
            assert isinstance(self.stage, AggregateStage)
            for chunk in tracked.source.read(windows.position, position):
                self.stage.fold(windows, chunk, lineage)  # what this emits the sink already holds
            windows.position = position
        self.windows[app_id] = windows
        return windows

    def _keep_windows(self, app_id: str, position: int) -> None:
        """After Delivered: the folded state is the state at the sink's new position (else it is rebuilt when needed)."""
        folding = self._folding.pop(app_id, None)
        if folding is None:
            return
        if folding.position == position:
            self.windows[app_id] = folding
            self.store.set_windows(self.sink.name, app_id, folding.to_bytes())
        else:
            self.windows.pop(app_id, None)

    def _plan(self, pending: list[Tracked], limit: int, solo: bool) -> tuple[list[Part], dict[str, Tracked]]:
        """The next batch: a part for each source behind its end, in order, until `limit` rows are planned."""
        parts: list[Part] = []
        owners: dict[str, Tracked] = {}
        budget = limit
        for tracked in list(pending):
            if budget <= 0 or (solo and parts):
                break
            position, end = tracked.positions[self.sink.name], tracked.status.end_id
            if position >= end or tracked.failed_this_cycle:
                pending.remove(tracked)
                continue
            try:
                upto = tracked.source.plan_upto(position, end, budget)
            except Exception as exc:  # noqa: BLE001 - one poisoned source must not stop the others
                self.sources.source_failed(tracked, describe(exc))
                pending.remove(tracked)
                continue
            part = self._part(tracked, position, upto)
            parts.append(part)
            owners[part.app_id] = tracked
            budget -= min(budget, upto - position)  # ids are unique and increasing: at most upto - position rows
        return parts, owners

    def drain(self, sources: list[Tracked]) -> None:
        """Ship every source up to its `status.end_id` for this sink, several sources per batch."""
        sink, backoff, status = self.sink, self.backoff, self.status
        batch_rows = min(self.settings.batch_size, self.inv.settings.read_batch_rows)
        pending = list(sources)
        solo = False  # after a refused multi-source batch: one source per batch, so only its rows are dead-lettered
        while (pending and not self.stop_requested.is_set() and not self.boundary_requested.is_set()
               and not backoff.is_waiting() and not status.failing_permanently):
            self._folding.clear()
            parts, owners = self._plan(pending, batch_rows, solo)
            if not parts:
                break
            batch = Batch(parts, schema=self.stage.schema)
            try:
                outcome = sink.write(batch)
            except Exception as exc:  # noqa: BLE001 - a source failed while it was read: only it stops
                for part in [p for p in parts if p.source_error is not None] or parts:
                    self.sources.source_failed(owners[part.app_id], describe(part.source_error or exc))
                continue
            if isinstance(outcome, Delivered):
                if any(outcome.positions[part.app_id] < part.after for part in parts):
                    self._lost_rows(parts, outcome)
                    return
                for part in parts:
                    position = outcome.positions[part.app_id]
                    self.store.set(sink.name, part.app_id, position)
                    owners[part.app_id].positions[sink.name] = position
                    self._keep_windows(part.app_id, position)
                backoff.record_success()
                status.rows_shipped += outcome.rows
                status.dead_lettered += len(batch.rejected)
                status.last_success = utc_now_iso()
            elif isinstance(outcome, Retry):
                self._failed(outcome.reason, outcome.permanent)
            elif isinstance(outcome, Rejected):
                if len(parts) > 1:
                    log.warning("Sink rejected a batch of several sources; retrying them one by one. sink=%s sources=%d error=%s",
                                sink.name, len(parts), outcome.reason)
                    solo = True
                else:
                    [part] = parts
                    self._rejected(owners[part.app_id], part, outcome.reason)
                    owners[part.app_id].positions[sink.name] = part.upto
                    self.windows.pop(part.app_id, None)
            self._record_usage()
            self.on_progress()
        self._record_usage()

    def _record_usage(self) -> None:
        """A sink's own service figures (Cosmos: request units, throttling) into its status."""
        usage = getattr(self.sink, "usage", None)
        if usage is not None:
            for key, value in usage.snapshot().items():
                setattr(self.status, key, value)

    def _lost_rows(self, parts: list[Part], outcome: Delivered) -> None:
        """The sink holds less than this uploader confirmed (its lake was deleted or emptied): start over from it.

        This sink's positions are read again next cycle, so it gets exactly what a fresh uploader would
        send it; the other sinks keep theirs."""
        for part in parts:
            if outcome.positions[part.app_id] < part.after:
                log.warning("Sink holds less of a source than the checkpoint (lake deleted or emptied?); shipping again "
                            "from the sink's position. sink=%s source=%s checkpoint=%d position=%d",
                            self.sink.name, part.lineage.source, part.after, outcome.positions[part.app_id])
        for tracked in self.sources.held():
            tracked.positions.pop(self.sink.name, None)

    def _failed(self, reason: str, permanent: bool = False) -> None:
        backoff, status = self.backoff, self.status
        backoff.record_failure()
        status.retries += 1
        status.last_error = reason
        if permanent or backoff.is_exhausted():
            status.failing_permanently = True
            log.error("Sink failing after its retry budget. sink=%s attempts=%d error=%s", self.sink.name, backoff.failures, reason)
        else:
            log.warning("Upload retry scheduled. sink=%s attempt=%d error=%s", self.sink.name, backoff.failures, reason)

    def _rejected(self, tracked: Tracked, part: Part, reason: str) -> None:
        sink, source = self.sink, tracked.source
        raw = source.raw_rows(list(range(part.after + 1, part.upto + 1)))
        rejections = [Rejection(source_id, f"rejected by {sink.name}: {reason}") for source_id in sorted(raw)]
        self.deadletters.write(sink.name, source=source.relpath, generation=source.generation,
                               stage=self.stage.name, rejections=rejections, raw_rows=raw)
        self.store.set(sink.name, part.app_id, part.upto)
        self.status.dead_lettered += len(rejections)
        self.status.last_error = reason
        log.error("Sink rejected a batch; rows dead-lettered. sink=%s source=%s rows=%d error=%s",
                  sink.name, source.relpath, len(rejections), reason)
        self._record_settled(part)

    def _record_settled(self, part: Part) -> None:
        """Move the sink's own position past dead-lettered rows (an empty part), or it would hand them back."""
        empty = Part(part.app_id, part.after, part.upto, part.lineage, lambda rejected: iter(()))
        try:
            outcome = self.sink.write(Batch([empty], schema=self.stage.schema))
        except Exception as exc:  # noqa: BLE001 - reported below like any other refusal
            outcome = Retry(describe(exc))
        if not isinstance(outcome, Delivered):
            log.warning("Sink did not record the dead-lettered range; they may be read and dead-lettered again. "
                        "sink=%s source=%s error=%s", self.sink.name, part.lineage.source, getattr(outcome, "reason", outcome))


def _directory_city(db_path: Path) -> str:
    """The City of data/<City>/<CODE>/sensor_data.db: the city when a DB's location says nothing."""
    return db_path.parent.parent.name or "unknown"
