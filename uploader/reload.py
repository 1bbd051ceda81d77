"""Settings changes while the uploader runs: the file `--config` names is polled (by content digest) and
its reloadable keys applied at a batch boundary, all or nothing; and the stage switches they cause.

Reloadable: `uploader.stage`, `uploader.interval_seconds`, `uploader.read_batch_rows` and, per sink,
`enabled`, `stage` and `batch_size`. Any other difference in `project` or `uploader.*` rejects the whole
change: nothing is applied, the uploader keeps running as it was, and its status file says why.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetcore.errors import ConfigError
from fleetcore.livesettings import settings_digest
from fleetcore.statusfiles import utc_now_iso
from uploader.settings import UploaderSettings, parse_settings

if TYPE_CHECKING:
    from uploader.delivery import SinkDelivery
    from uploader.invocation import Invocation
    from uploader.sinks.base import Sink
    from uploader.stages import Stage
    from uploader.tracking import SourceTracker

log = logging.getLogger("uploader")

POLL_SECONDS = 0.25
RELOADABLE = ("uploader.stage", "uploader.interval_seconds", "uploader.read_batch_rows")
RELOADABLE_PER_SINK = ("enabled", "stage", "batch_size")


def is_reloadable(key: str) -> bool:
    parts = key.split(".")
    return key in RELOADABLE or (len(parts) == 4 and parts[:2] == ["uploader", "sinks"] and parts[3] in RELOADABLE_PER_SINK)


def _flat(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flat(item, f"{prefix}.{key}"))
        return flat
    return {prefix: value}


def fixed_changes(before: tuple[UploaderSettings, str | None], after: tuple[UploaderSettings, str | None]) -> list[str]:
    """One message per key that changed but cannot change while the uploader runs."""
    old = {**_flat(before[0].model_dump(mode="json"), "uploader"), "project": before[1]}
    new = {**_flat(after[0].model_dump(mode="json"), "uploader"), "project": after[1]}
    # Keys only, never values: a changed key may hold a secret.
    return [f"{key}: changed, but not reloadable; restart the uploader to apply it"
            for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key) and not is_reloadable(key)]


@dataclass
class Change:
    digest: str
    settings: UploaderSettings | None = None
    project: str | None = None
    errors: list[str] | None = None


class SettingsWatcher:
    """Polls one settings file at most every POLL_SECONDS; `poll()` reports a new content once."""

    def __init__(self, path: Path, digest: str | None):
        self.path = path
        self.digest = digest
        self._polled = 0.0

    def poll(self, *, force: bool = False) -> Change | None:
        now = time.monotonic()
        if not force and now - self._polled < POLL_SECONDS:
            return None
        self._polled = now
        try:
            data = self.path.read_bytes()
        except OSError:
            return None  # mid-replace or briefly absent: the next poll sees it
        digest = settings_digest(data)
        if digest == self.digest:
            return None
        self.digest = digest
        try:
            settings, project = parse_settings(data, self.path)
        except ConfigError as exc:
            return Change(digest, errors=exc.problems)
        return Change(digest, settings, project)


KEEP_SWITCHES = 10


class StageSwitches:
    """Stage switches of this uploader's sinks: those found at start (`pending`) and the last few made (`recent`)."""

    def __init__(self, sources: SourceTracker):
        self.sources = sources
        self.pending: dict[str, tuple[Sink, Stage]] = {}  # sink name → (its sink for the new stage, the stage)
        self.recent: list[dict[str, Any]] = []

    def switch(self, delivery: SinkDelivery, sink: Sink, stage: Stage, invocation: Invocation) -> None:
        """Hand `delivery` over to `stage`, recording per source the last seq the old stage received."""
        old = delivery.stage.name
        name = delivery.sink.name
        positions: dict[str, int] = {}
        for tracked in self.sources.held():
            position = tracked.positions.get(name)
            seq = tracked.source.seq_at(position) if position else None
            if seq is not None:
                positions[tracked.source.relpath] = seq
        delivery.switch(sink, stage, invocation)
        delivery.status.stage = stage.name
        self.recent.append({"at": utc_now_iso(), "sink": name, "from": old, "to": stage.name, "positions": positions})
        del self.recent[:-KEEP_SWITCHES]
        log.info("Stage switched. sink=%s from=%s to=%s sources=%d", name, old, stage.name, len(positions))
