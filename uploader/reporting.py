"""Building and writing the uploader's status file from the sources it holds and each sink's status."""
from __future__ import annotations

import time
from functools import partial
from typing import Any

from fleetcore.livesettings import AppliedSettings, RejectedSettings
from uploader.invocation import Invocation
from uploader.sources.sqlite import SourceUnreadableError
from uploader.status_file import SinkStatus, SourceStatus, UploaderStatus
from uploader.tracking import SourceTracker

STATUS_EVERY_SECONDS = 2.0


class StatusReporter:
    """Writes `UploaderStatus`: lag per sink recomputed from every held source's positions at each write."""

    def __init__(self, invocation: Invocation, sources: SourceTracker, sink_status: dict[str, SinkStatus],
                 stage_switches: list[dict[str, Any]] | None = None):
        self.inv = invocation
        self.sources = sources
        self.sink_status = sink_status
        self.stage_switches = stage_switches if stage_switches is not None else []
        self.applied: AppliedSettings | None = None
        self.rejected: RejectedSettings | None = None
        self._written = 0.0

    def maybe_write(self, state: str) -> None:
        if time.monotonic() - self._written >= STATUS_EVERY_SECONDS:
            self.write(state)

    def write(self, state: str) -> None:
        now = time.time()
        sources: list[SourceStatus] = []
        for status in self.sink_status.values():
            status.lag_rows, status.lag_seconds = 0, 0.0
        for tracked in self.sources.held():
            tracked.status.positions = dict(tracked.positions)
            for name, status in self.sink_status.items():
                position = tracked.positions.get(name, 0)
                behind = max(0, tracked.status.end_id - position)
                status.lag_rows += behind
                if behind:
                    oldest = _safe(partial(tracked.source.timestamp_after, position))
                    if oldest is not None:
                        status.lag_seconds = max(status.lag_seconds, round(now - oldest, 3))
            sources.append(tracked.status)
        sources.extend(self.sources.others.values())
        UploaderStatus(
            name=f"uploader-{self.inv.uploader_id}", uploader_id=self.inv.uploader_id, state=state,
            interval_seconds=self.inv.interval, sinks=self.sink_status, sources=sources, project=self.inv.project,
            fleet_epoch=self.inv.fleet_epoch, mode="continuous" if self.inv.continuous else "once",
            lake=str(self.inv.lake), data=str(self.inv.sqlite), applied_settings=self.applied,
            rejected_settings=self.rejected, stage_switches=self.stage_switches,
        ).write(self.inv.status_path)
        self._written = time.monotonic()


def _safe(function):
    try:
        return function()
    except SourceUnreadableError:
        return None
