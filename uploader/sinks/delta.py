"""The Delta Lake sink (default): `<lake>/sensor_readings`, partitioned by city and date.

Guarantee: exactly once per source row. A batch (the new rows of one or more sources) is one Delta
commit carrying one app transaction per source (app id = the source's app id, version = the last source
id of its part) atomically with the data, so the table itself records how far each source got; that
version is authoritative and the uploader's local checkpoint only a cache refreshed from it. `write`
first reads the table's version for each app id and writes a part only when it starts exactly there: a
replayed range (the table is ahead) writes nothing, and a part beyond the table's version (the table was
deleted, recreated or emptied under a running uploader) makes the whole batch write nothing and answer
the table's positions, so the pipeline starts over from the table (ship generation included) instead of
leaving a gap. Two writers racing on one
app id cannot both commit (the Delta conflict checker refuses the second). Idempotency key: (app id, source id), which maps 1:1 onto (sensor_id, fleet_epoch, seq).

Several uploaders append to one table concurrently: appends never conflict logically, and the commit
is retried against the newer table version up to `commit_retries` times.

The table may live anywhere delta-rs reaches: a local path, or a URI (`s3://…`) with `storage_options`;
the S3 sink is this class under another name with an S3 table URI.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, PostCommitHookProperties, Transaction, write_deltalake
from deltalake.exceptions import (
    CommitFailedError,
    DeltaError,
    DeltaProtocolError,
    SchemaMismatchError,
    TableNotFoundError,
)
from pydantic import Field

from uploader import lakeread
from uploader.batch import Batch, Part
from uploader.schema import ADDED_COLUMNS, AGGREGATE_SCHEMA, CANONICAL_SCHEMA, PARTITION_COLUMNS
from uploader.sinks.base import (
    READING_STAGES,
    CheckResult,
    Delivered,
    Outcome,
    Rejected,
    Retry,
    SinkContext,
    SinkSettings,
    SinkSpec,
)

TABLE_NAME = "sensor_readings"
REJECT_MARKERS = ("failed validation check", "Invariant", "non-nullable", "Schema error", "schema mismatch", "Cast error")


class DeltaSinkSettings(SinkSettings):
    enabled: bool = True
    path: str | None = Field(None, description="table location; default <lake>/sensor_readings")
    commit_retries: int = Field(20, ge=0, le=1000)


def classify(exc: Exception) -> Retry | Rejected:
    """Rejected when the rows themselves cannot go into the table; Retry for everything that may pass."""
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, (SchemaMismatchError, DeltaProtocolError)) or any(m in str(exc) for m in REJECT_MARKERS):
        return Rejected(message)
    return Retry(message)


def table_path(lake: str | os.PathLike[str]) -> str:
    return str(Path(lake) / TABLE_NAME)


class DeltaSink:

    def __init__(self, path: str | os.PathLike[str], settings: DeltaSinkSettings | None = None, stage: str = "raw", *,
                 storage_options: dict[str, str] | None = None, name: str = "delta"):
        self.path = str(path)
        self.settings = settings or DeltaSinkSettings()
        self.stage = stage
        self.storage_options = storage_options
        self.name = name
        self.schema = AGGREGATE_SCHEMA if stage == "aggregated" else CANONICAL_SCHEMA
        self._table: DeltaTable | None = None

    @property
    def local(self) -> bool:
        return "://" not in self.path

    # -- the table ---------------------------------------------------------------------------------
    def _load(self) -> DeltaTable:
        if self._table is None:
            try:
                self._table = DeltaTable(self.path, storage_options=self.storage_options)
            except TableNotFoundError:
                if self.local:
                    Path(self.path).mkdir(parents=True, exist_ok=True)
                try:
                    self._table = DeltaTable.create(self.path, self.schema, mode="ignore",
                                                    partition_by=PARTITION_COLUMNS,
                                                    name=TABLE_NAME if self.schema is CANONICAL_SCHEMA else Path(self.path).name,
                                                    storage_options=self.storage_options)
                except (CommitFailedError, DeltaError):
                    # another uploader created it first
                    self._table = DeltaTable(self.path, storage_options=self.storage_options)
        else:
            self._table.update_incremental()
        return self._table

    def _commit_properties(self, parts: list[Part]) -> CommitProperties:
        return CommitProperties(
            app_transactions=[Transaction(part.app_id, part.upto) for part in parts],
            max_commit_retries=self.settings.commit_retries,
            custom_metadata={"sensor_manager.sources": ",".join(part.lineage.source for part in parts),
                             "sensor_manager.uploader_id": parts[0].lineage.uploader_id},
        )

    # -- the contract ------------------------------------------------------------------------------
    def resume_from(self, app_id: str) -> int | None:
        return self._load().transaction_version(app_id) or 0

    def write(self, batch: Batch) -> Outcome:
        try:
            table = self._load()
            positions = {part.app_id: table.transaction_version(part.app_id) or 0 for part in batch.parts}
            # A part beyond the table's position means the table was replaced: write nothing, report where it is.
            behind = any(positions[part.app_id] < part.after for part in batch.parts)
            todo = [] if behind else [part for part in batch.parts if positions[part.app_id] == part.after]
            if todo:
                # merge: a table created before ADDED_COLUMNS gains them (older rows read null)
                write_deltalake(table, batch.reader(todo), mode="append", partition_by=PARTITION_COLUMNS,
                                schema_mode="merge", commit_properties=self._commit_properties(todo),
                                post_commithook_properties=PostCommitHookProperties(create_checkpoint=True))
        except Exception as exc:  # noqa: BLE001 - classified here so callers never see vendor types
            self._table = None
            if batch.source_error is not None:  # a source failed mid-stream: not this sink's problem
                raise batch.source_error from None
            return classify(exc)
        positions.update({part.app_id: part.upto for part in todo})
        return Delivered(positions=positions, rows=sum(part.rows for part in todo))

    # -- maintenance (clean, reset) --------------------------------------------------------------------
    def _existing(self) -> DeltaTable | None:
        """The table for `clean`/`reset`: None before the first commit; a damaged log is one LakeUnreadableError."""
        with lakeread.reading(self.path):
            try:
                return DeltaTable(self.path, storage_options=self.storage_options)
            except TableNotFoundError:
                return None

    def count_project(self, project: str, fleet_epoch: int | None = None) -> int:
        import pyarrow.dataset as ds

        table = self._existing()
        if table is None:
            return 0
        condition = ds.field("project") == project
        if fleet_epoch is not None:
            condition = condition & (ds.field("fleet_epoch") == fleet_epoch)
        # A local table is read by arrow alone (uploader/lakeread.py: deltalake's Python filesystem can crash at exit).
        dataset = lakeread.open_dataset(table) if self.local else table.to_pyarrow_dataset()
        return dataset.count_rows(filter=condition)

    def delete_project(self, project: str, fleet_epoch: int | None = None) -> int:
        table = self._existing()
        if table is None:
            return 0
        predicate = "project = '" + project.replace("'", "''") + "'"
        if fleet_epoch is not None:
            predicate += f" AND fleet_epoch = {int(fleet_epoch)}"
        self._table = None
        return int(table.delete(predicate).get("num_deleted_rows", 0) or 0)

    def mark_shipped(self, positions: dict[str, int]) -> None:
        """One commit carrying only app transactions (no rows)."""
        if positions:
            write_deltalake(self._load(), pa.RecordBatchReader.from_batches(self.schema, iter(())), mode="append",
                            partition_by=PARTITION_COLUMNS, schema_mode="merge",
                            commit_properties=CommitProperties(app_transactions=[
                                Transaction(app_id, upto) for app_id, upto in positions.items()]))

    def check(self) -> CheckResult:
        """The table loads (or can be created) with the canonical columns, and (local) its log directory takes a file."""
        try:
            table = self._load()
        except Exception as exc:  # noqa: BLE001
            self._table = None
            return CheckResult(False, f"{self.name}: cannot open or create {self.path}: {exc}")
        names = {field.name for field in table.schema().fields}
        missing = sorted(set(self.schema.names) - names - set(ADDED_COLUMNS))
        if missing:
            return CheckResult(False, f"{self.name}: {self.path} lacks columns {', '.join(missing)}: "
                                      f"not a {Path(self.path).name} table")
        if not self.local:  # a remote store's write access is probed by the sink that knows its API
            return CheckResult(True, f"{self.name}: {self.path} ok (version {table.version()})")
        probe = Path(self.path) / "_delta_log" / f".probe-{uuid.uuid4().hex}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            return CheckResult(False, f"delta: cannot write to {probe.parent}: {exc.strerror}")
        return CheckResult(True, f"delta: {self.path} ok (version {table.version()})")


def _table_location(settings: DeltaSinkSettings, context: SinkContext) -> Path:
    """The readings table; the aggregated stage writes beside it, `<table>_<window>` (sensor_readings_1m)."""
    table = context.local(settings.path, context.lake / TABLE_NAME)
    return table if context.stage in READING_STAGES else table.with_name(f"{table.name}_{context.window}")


SPEC = SinkSpec(
    name="delta",
    settings=DeltaSinkSettings,
    build=lambda settings, context: DeltaSink(_table_location(settings, context), settings, context.stage),
    location=lambda settings, context: str(_table_location(settings, context)),
    project_path=lambda settings, context: _table_location(settings, context),
    cleans="a Delta delete of the rows whose project (and, for reset, fleet_epoch) is this project's",
    stages=READING_STAGES | {"aggregated"},
)
