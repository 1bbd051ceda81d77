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
from uploader.stages.raw import RawStage
from uploader.status_file import SinkStatus
from uploader.tracking import SourceTracker, Tracked, describe

log = logging.getLogger("uploader")


class SinkDelivery:
    """One sink's side of the uploader: its backoff, its status and every write to it."""

    def __init__(self, sink: Sink, invocation: Invocation, *, stage: RawStage, store: CheckpointStore,
                 deadletters: DeadLetterStore, namespace: ShipNamespace, sources: SourceTracker,
                 stop_requested: threading.Event, on_progress: Callable[[], None]):
        self.sink = sink
        self.inv = invocation
        self.settings = invocation.settings.sinks.named(sink.name)
        self.stage = stage
        self.store = store
        self.deadletters = deadletters
        self.namespace = namespace
        self.sources = sources
        self.stop_requested = stop_requested
        self.on_progress = on_progress
        self.backoff = Backoff(self.settings.retry, not invocation.continuous)
        self.status = SinkStatus()

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

        def chunks(rejected: list[Rejection]):
            for chunk in source.read(after, upto):
                kept, dropped = self.stage.apply(chunk, lineage)
                rejected.extend(dropped)
                if kept is not None:
                    yield kept

        def on_rejected(rejections: list[Rejection]) -> None:
            self.deadletters.write(self.sink.name, source=source.relpath, generation=source.generation,
                                   stage=self.stage.name, rejections=rejections,
                                   raw_rows=source.raw_rows([r.source_id for r in rejections]))

        return Part(self.namespace.app_id(source.key), after, upto, lineage, chunks, on_rejected)

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
        while pending and not self.stop_requested.is_set() and not backoff.is_waiting() and not status.failing_permanently:
            parts, owners = self._plan(pending, batch_rows, solo)
            if not parts:
                break
            batch = Batch(parts)
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
            outcome = self.sink.write(Batch([empty]))
        except Exception as exc:  # noqa: BLE001 - reported below like any other refusal
            outcome = Retry(describe(exc))
        if not isinstance(outcome, Delivered):
            log.warning("Sink did not record the dead-lettered range; they may be read and dead-lettered again. "
                        "sink=%s source=%s error=%s", self.sink.name, part.lineage.source, getattr(outcome, "reason", outcome))


def _directory_city(db_path: Path) -> str:
    """The City of data/<City>/<CODE>/sensor_data.db: the city when a DB's location says nothing."""
    return db_path.parent.parent.name or "unknown"
