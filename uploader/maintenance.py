"""Sink maintenance for the lifecycle commands (`clean`, `reset`): count, delete, or skip a project's history.

Every function works on the sinks it is given (the registry builds them from the settings), so each
sink's own `count_project` / `delete_project` / `mark_shipped` decides what "this project's rows" are
there, and nothing else in a shared table or bucket is touched.

- `count_project_rows` / `delete_project_rows`: per sink, the project's rows (of one fleet epoch, if given).
- `mark_history_shipped`: after a clean, make uploaders *not* ship the history again: every source's
  position moves to its current end, in each sink (its own durable record) and in every local
  checkpoint store. The opposite, shipping all history again, is a new ship generation in the plan
  (`sensor_manager.plan.bump_ship_generation`): every app id changes, so every source starts from its first row.

Run these with the project's uploaders stopped: a running uploader keeps its positions in memory.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

from uploader.invocation import read_plan_identity
from uploader.settings import UploaderSettings
from uploader.shipping import ShipNamespace
from uploader.sinks import SINKS
from uploader.sinks.base import Sink, SinkContext
from uploader.sources.discovery import find_databases
from uploader.sources.sqlite import SourceNotReadyError, SourceUnreadableError, SqliteSource


def project_sinks(settings: UploaderSettings, context: SinkContext) -> list[Sink]:
    """The enabled sinks, built as an uploader would build them."""
    return [SINKS[name].build(sink_settings, context) for name, sink_settings in settings.sinks.enabled().items()]


def count_project_rows(sinks: list[Sink], project: str, fleet_epoch: int | None = None) -> dict[str, int]:
    return {sink.name: sink.count_project(project, fleet_epoch) for sink in sinks}


def delete_project_rows(sinks: list[Sink], project: str, fleet_epoch: int | None = None) -> dict[str, int]:
    """Delete the project's rows from every sink; returns how many each held."""
    return {sink.name: sink.delete_project(project, fleet_epoch) for sink in sinks}


def source_ends(project_dir: Path, namespace: ShipNamespace) -> dict[str, int]:
    """App id -> current end id of every readable sensor DB under `<project_dir>/data`."""
    ends: dict[str, int] = {}
    data = project_dir / "data"
    for path in find_databases(data) if data.is_dir() else []:
        try:
            source = SqliteSource(path, data)
        except (SourceNotReadyError, SourceUnreadableError):
            continue
        try:
            ends[namespace.app_id(source.key)] = source.end_id()
        finally:
            source.close()
    return ends


def mark_history_shipped(project_dir: str | Path, sinks: list[Sink], *, state_root: str | Path | None = None,
                         project: str | None = None, fleet_epoch: int | None = None) -> int:
    """Move every source's position to its current end (each sink and the checkpoint stores); returns sources moved."""
    root = Path(project_dir)
    identity = read_plan_identity(root)
    namespace = ShipNamespace(project or (identity.project if identity else "standalone"),
                              fleet_epoch if fleet_epoch is not None else (identity.fleet_epoch if identity else 1),
                              identity.ship_generation if identity else 0)
    ends = source_ends(root, namespace)
    for sink in sinks:
        sink.mark_shipped(ends)
    state = Path(state_root) if state_root else root / "state"
    rows = [(sink.name, app_id, end) for sink in sinks for app_id, end in ends.items()]
    for store in (state / "checkpoints").glob("uploader-*.sqlite"):
        with sqlite3.connect(store) as db:
            db.executemany("INSERT INTO checkpoints (sink, app_id, position, updated_at) VALUES (?, ?, ?, strftime('%s','now'))"
                           " ON CONFLICT (sink, app_id) DO UPDATE SET position = excluded.position", rows)
    return len(ends)
