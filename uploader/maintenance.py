"""Lake and checkpoint maintenance for the lifecycle commands (`clean`): count, delete, skip or re-ship history.

- `count_project_rows(lake, project)` / `delete_project_rows(lake, project)`: rows of one project in
  `<lake>/sensor_readings` (a Delta delete: a new table version, files vacuumable later).
- `mark_history_shipped(project_dir, ...)`: after a clean, make uploaders *not* ship the history again:
  every source's position moves to its current end, in the Delta table (one commit carrying an app
  transaction per source: the table is authoritative) and in every local checkpoint store.
- `request_reship(lake, project)`: the opposite: ship all history again, by moving the project to a new
  ship generation (its app ids change, so every source starts from its first row).

Run these with the project's uploaders stopped: a running uploader keeps its positions in memory.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from uploader.invocation import read_plan_identity
from uploader.lakeread import open_dataset, open_table
from uploader.schema import CANONICAL_SCHEMA, PARTITION_COLUMNS
from uploader.shipping import ShipNamespace, read_ship_generation, ship_generation_app_id
from uploader.sinks.delta import table_path
from uploader.sources.discovery import find_databases
from uploader.sources.sqlite import SourceNotReadyError, SourceUnreadableError, SqliteSource


def _table(lake: str | Path) -> DeltaTable | None:
    return open_table(table_path(lake))


def _quoted(project: str) -> str:
    return "'" + project.replace("'", "''") + "'"


def count_project_rows(lake: str | Path, project: str) -> int:
    table = _table(lake)
    if table is None:
        return 0
    import pyarrow.dataset as ds

    return open_dataset(table).count_rows(filter=ds.field("project") == project)


def delete_project_rows(lake: str | Path, project: str) -> int:
    """Delete the project's rows; returns how many were deleted (0 when there is no table)."""
    table = _table(lake)
    if table is None:
        return 0
    metrics = table.delete(f"project = {_quoted(project)}")
    return int(metrics.get("num_deleted_rows", 0) or 0)


def _commit_transactions(table_uri: str, transactions: list[Transaction]) -> None:
    """One commit carrying only app transactions (no rows)."""
    if not transactions:
        return
    write_deltalake(table_uri, pa.RecordBatchReader.from_batches(CANONICAL_SCHEMA, iter(())), mode="append",
                    partition_by=PARTITION_COLUMNS, commit_properties=CommitProperties(app_transactions=transactions))


def mark_history_shipped(project_dir: str | Path, *, lake: str | Path | None = None, state_root: str | Path | None = None,
                         fleet_epoch: int | None = None, project: str | None = None) -> int:
    """Move every source's position to its current end (table and checkpoint stores); returns sources moved."""
    root = Path(project_dir)
    identity = read_plan_identity(root) or (project or "standalone", 1)
    project, epoch = project or identity[0], fleet_epoch if fleet_epoch is not None else identity[1]
    lake = Path(lake) if lake else root / "lake"
    state = Path(state_root) if state_root else root / "state"
    table_uri = table_path(lake)
    namespace = ShipNamespace(project, epoch, read_ship_generation(table_uri, project))
    ends: dict[str, int] = {}
    data = root / "data"
    for path in find_databases(data) if data.is_dir() else []:
        try:
            source = SqliteSource(path, data)
        except (SourceNotReadyError, SourceUnreadableError):
            continue
        try:
            ends[namespace.app_id(source.key)] = source.end_id()
        finally:
            source.close()
    _commit_transactions(table_uri, [Transaction(app_id, end) for app_id, end in ends.items()])
    for store in (state / "checkpoints").glob("uploader-*.sqlite"):
        with sqlite3.connect(store) as db:
            db.executemany("INSERT INTO checkpoints (sink, app_id, position, updated_at) VALUES ('delta', ?, ?, strftime('%s','now'))"
                           " ON CONFLICT (sink, app_id) DO UPDATE SET position = excluded.position", list(ends.items()))
    return len(ends)


def request_reship(lake: str | Path, project: str) -> int:
    """Start a new ship generation for the project: every source ships from its first row again. Returns it."""
    table_uri = table_path(lake)
    generation = read_ship_generation(table_uri, project) + 1
    _commit_transactions(table_uri, [Transaction(ship_generation_app_id(project), generation)])
    return generation
