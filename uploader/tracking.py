"""The sources this uploader holds: discovery, opening and locking DBs, retiring replaced generations, source failures.

A cycle re-scans the data path: new DBs are opened (and locked), a replaced one becomes a new source while
the old generation, still open, is kept in `retiring` until every sink has drained it to its end.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from fleetcore.edge_db import FleetEpochMismatchError
from uploader.invocation import Invocation
from uploader.locks import SourceLocks
from uploader.sources.discovery import find_databases
from uploader.sources.sqlite import SourceNotReadyError, SourceUnreadableError, SqliteSource
from uploader.status_file import SourceStatus

log = logging.getLogger("uploader")
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


class SourceTracker:
    """Which sources this uploader holds (`tracked`, `retiring`) and which it found but does not ship (`others`)."""

    def __init__(self, invocation: Invocation, locks: SourceLocks):
        self.inv = invocation
        self.locks = locks
        self.tracked: dict[Path, Tracked] = {}
        self.retiring: list[Tracked] = []
        self.others: dict[Path, SourceStatus] = {}  # skipped, not ready or unreadable

    def held(self) -> list[Tracked]:
        """Every source still to be shipped from: retiring generations first, then the current ones."""
        return list(self.retiring) + list(self.tracked.values())

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

    def source_failed(self, tracked: Tracked, error: str) -> None:
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

    def retire_drained(self, sink_names: list[str]) -> None:
        """Close the retiring generations every sink has shipped to their end."""
        for tracked in list(self.retiring):
            if all(tracked.positions.get(name, 0) >= tracked.status.end_id for name in sink_names):
                self.retiring.remove(tracked)
                tracked.source.close()

    def locked_elsewhere(self) -> list[str]:
        return [status.source for status in self.others.values() if status.skipped == LOCKED_ELSEWHERE]

    def close(self) -> None:
        for tracked in list(self.tracked.values()) + self.retiring:
            tracked.source.close()
        self.locks.release_all()


def describe(exc: BaseException) -> str:
    """A source failure as reported: an unreadable source says why, anything else names its type."""
    if isinstance(exc, SourceUnreadableError):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc}"
