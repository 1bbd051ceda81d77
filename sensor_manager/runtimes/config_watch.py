"""The local supervisor's watch on the project config file: a changed file is reloaded (live/reload.py).

Polled with the supervisor's loop (at most `simulator.live.POLL_SECONDS` apart). The file as it was
when the watch began is the baseline: only a later change is reloaded, so the flags given to `start`
hold until the file is edited.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from fleetcore.livesettings import settings_digest
from sensor_manager.layout import ProjectLayout
from sensor_manager.simulator.live import POLL_SECONDS, PolledFile


class ConfigWatcher:
    def __init__(self, layout: ProjectLayout, note: Callable[[str], None]):
        self.layout = layout
        self.note = note
        self.file: PolledFile | None = None
        self.digest: str | None = None
        self.next_poll = 0.0

    def watch(self, path: str | None) -> None:
        """Watch `path` (the spec's config file) from now on; a new path starts a new baseline."""
        if path is None or (self.file is not None and self.file.path == Path(path)):
            return
        self.file = PolledFile(Path(path))
        data = self.file.changed()
        self.digest = settings_digest(data) if data is not None else None

    def poll(self, now: float) -> None:
        if self.file is None or now < self.next_poll:
            return
        self.next_poll = now + POLL_SECONDS
        data = self.file.changed()
        if data is None or settings_digest(data) == self.digest:
            return
        self.digest = settings_digest(data)
        from sensor_manager.live.reload import reload_config

        try:
            record = reload_config(self.layout, "local", self.file.path)
        except OSError as exc:  # a full disk: the next change is tried again
            self.note(f"Config reload failed. config={self.file.path} error={exc}")
            return
        if record.rejected:
            self.note(f"Config change rejected; services unchanged. config={self.file.path} errors={'; '.join(record.errors)}")
        else:
            self.note(f"Config reloaded. config={self.file.path} outcome={record.outcome} written={len(record.written)}")
