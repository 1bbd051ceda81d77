"""The Parquet archive sink (the seed's `archive/`): append-only, immutable part files per sensor DB.

Layout: `<root>/<City>/<CODE>/<generation>-<from>-<to>.parquet` (zstd), one file per part of a batch,
holding source ids from..to of one DB generation. A file is written under a temp name, fsynced, then
renamed into place (and the directory fsynced), so a reader or a crash never sees a partial file.

Exactly once: the files themselves are the position. A source's position is the end of the
contiguous chain of its files starting at id 1; a part is written only when it starts exactly there
(a replay writes nothing, a part beyond it writes nothing and answers the position, as the Delta sink
does). `resume_from(app_id)` needs the source's directory and generation before any write, so the first
write for an app id records them in `<root>/_sources/<hash of app id>.json` (written atomically before
any of its part files); no record means nothing was written. A crash between the temp file and the
rename leaves only a `.tmp-*` file, which is ignored and swept by the next write to that directory.

Parts are keyed by (directory, generation, id range), not by ship namespace: the archive holds each row
of a DB generation once, whatever namespace later asks for it again.

Compaction (`compact`) builds the consolidated per-sensor view `<root>/<City>/<CODE>.parquet`; see there.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from uploader.batch import Batch, Part
from uploader.schema import CANONICAL_SCHEMA, with_added_columns
from uploader.sinks.base import CheckResult, Delivered, Outcome, Rejected, Retry, SinkContext, SinkSettings, SinkSpec

COMPRESSION = "zstd"
PART_NAME = re.compile(r"^(?P<generation>.+)-(?P<first>\d+)-(?P<last>\d+)\.parquet$")
SOURCES_DIR = "_sources"
TMP_PREFIX = ".tmp-"


class ParquetSinkSettings(SinkSettings):
    path: str | None = Field(None, description="default <project-dir>/archive")


class BadRowsError(ValueError):
    """Rows the archive's schema refuses (a null in a required column, a type that does not cast)."""


def conform(chunk: pa.RecordBatch) -> pa.RecordBatch:
    """The chunk in the canonical schema, or BadRowsError naming what is wrong with it."""
    try:
        chunk = chunk.select(CANONICAL_SCHEMA.names).cast(CANONICAL_SCHEMA)
    except (KeyError, ValueError, TypeError, pa.ArrowNotImplementedError) as exc:  # ArrowInvalid is a ValueError
        raise BadRowsError(f"rows do not fit the canonical schema: {exc}") from None
    for field, column in zip(CANONICAL_SCHEMA, chunk.columns, strict=False):
        if not field.nullable and column.null_count:
            raise BadRowsError(f"{column.null_count} row(s) have no value in required column {field.name}")
    return chunk


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: Path, final: Path) -> None:
    """Make a fully written temp file visible under its final name, durably."""
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, final)
    fsync_dir(final.parent)


def part_dir(part: Part) -> PurePosixPath:
    """`<City>/<CODE>` for `<City>/<CODE>/sensor_data.db`; a DB at the data root goes under its city."""
    source = PurePosixPath(part.lineage.source)
    if source.is_absolute() or ".." in source.parts:
        raise ValueError(f"source path {part.lineage.source!r} is not relative to the data root")
    parent = source.parent
    return parent if parent.parts else PurePosixPath(part.lineage.city_fallback) / source.stem


@dataclass(frozen=True)
class PartFile:
    generation: str
    first: int
    last: int
    path: Path


def part_files(directory: Path, generation: str | None = None) -> list[PartFile]:
    """The published part files of a directory (of one generation, if given), by first id."""
    found = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    for entry in entries:
        match = PART_NAME.match(entry.name)
        if match and (generation is None or match["generation"] == generation):
            found.append(PartFile(match["generation"], int(match["first"]), int(match["last"]), Path(entry.path)))
    return sorted(found, key=lambda f: (f.generation, f.first))


def held_upto(files: list[PartFile], floor: int = 0) -> int:
    """The end of the contiguous chain of files (of one generation) from id `floor` + 1."""
    position = floor
    for file in files:
        if file.first == position + 1:
            position = file.last
    return position


class ParquetArchiveSink:
    name = "parquet"

    def __init__(self, root: str | os.PathLike[str], stage: str = "raw"):
        self.root = Path(root)
        self.stage = stage

    # -- where a source lives ------------------------------------------------------------------------
    def _record_path(self, app_id: str) -> Path:
        return self.root / SOURCES_DIR / f"{hashlib.sha256(app_id.encode()).hexdigest()[:32]}.json"

    def _record(self, app_id: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._record_path(app_id).read_text())
        except FileNotFoundError:
            return None

    def _located(self, app_id: str) -> tuple[Path, str, int] | None:
        record = self._record(app_id)
        if record is None:
            return None
        return self.root / record["dir"], record["generation"], int(record.get("floor", 0))

    def _write_record(self, record: dict[str, Any]) -> None:
        path = self._record_path(record["app_id"])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}")
        tmp.write_text(json.dumps(record))
        publish(tmp, path)

    def _locate(self, part: Part) -> tuple[Path, str, int]:
        located = self._located(part.app_id)
        if located is None:
            self._write_record({"app_id": part.app_id, "dir": str(part_dir(part)), "generation": part.lineage.generation})
            located = self.root / part_dir(part), part.lineage.generation, 0
        return located

    def _position(self, directory: Path, generation: str, floor: int = 0) -> int:
        return held_upto(part_files(directory, generation), floor)

    # -- the contract ------------------------------------------------------------------------------
    def resume_from(self, app_id: str) -> int | None:
        located = self._located(app_id)
        return 0 if located is None else self._position(*located)

    def write(self, batch: Batch) -> Outcome:
        written: list[tuple[Path, Path]] = []
        try:
            places = {part.app_id: self._locate(part) for part in batch.parts}
            positions = {part.app_id: self._position(*places[part.app_id]) for part in batch.parts}
            behind = any(positions[part.app_id] < part.after for part in batch.parts)
            todo = [] if behind else [part for part in batch.parts if positions[part.app_id] == part.after]
            # Every part goes to a temp file first; only when all are complete is any of them published.
            for part in todo:
                directory, generation, _ = places[part.app_id]
                directory.mkdir(parents=True, exist_ok=True)
                final = directory / f"{generation}-{part.after + 1}-{part.upto}.parquet"
                tmp = directory / f"{TMP_PREFIX}{uuid.uuid4().hex}-{final.name}"
                written.append((tmp, final))
                self._write_part(part, tmp)
            for tmp, final in written:
                publish(tmp, final)
        except Exception as exc:  # noqa: BLE001 - classified here so callers never see vendor types
            for tmp, _ in written:
                tmp.unlink(missing_ok=True)
            if batch.source_error is not None:
                raise batch.source_error from None
            if isinstance(exc, BadRowsError):
                return Rejected(f"parquet: {exc}")
            return Retry(f"parquet: {type(exc).__name__}: {exc}")
        self._sweep({places[part.app_id][0] for part in todo})
        positions.update({part.app_id: part.upto for part in todo})
        return Delivered(positions=positions, rows=sum(part.rows for part in todo))

    def _write_part(self, part: Part, path: Path) -> None:
        with pq.ParquetWriter(path, CANONICAL_SCHEMA, compression=COMPRESSION) as writer:
            for chunk in part.stream():
                writer.write_batch(conform(chunk))

    def _sweep(self, directories: set[Path]) -> None:
        """Remove temp files a crashed writer left behind (ours were all published or removed)."""
        for directory in directories:
            for leftover in directory.glob(f"{TMP_PREFIX}*"):
                leftover.unlink(missing_ok=True)

    # -- maintenance (clean, reset) --------------------------------------------------------------------
    def _project_records(self, project: str, fleet_epoch: int | None) -> list[dict[str, Any]]:
        """The source records written for this project's namespaces (of one fleet epoch, if given)."""
        from uploader.shipping import namespace_prefix

        prefix = namespace_prefix(project, fleet_epoch)
        records = []
        for path in sorted((self.root / SOURCES_DIR).glob("*.json")):
            record = json.loads(path.read_text())
            if str(record.get("app_id", "")).startswith(prefix):
                records.append(record)
        return records

    def _project_files(self, project: str, fleet_epoch: int | None) -> list[Path]:
        files: dict[Path, None] = {}
        for record in self._project_records(project, fleet_epoch):
            for file in part_files(self.root / record["dir"], record["generation"]):
                files[file.path] = None
        return list(files)

    def count_project(self, project: str, fleet_epoch: int | None = None) -> int:
        return sum(pq.ParquetFile(path).metadata.num_rows for path in self._project_files(project, fleet_epoch))

    def delete_project(self, project: str, fleet_epoch: int | None = None) -> int:
        """This project's part files, and the consolidated views built from them (`archive compact` rebuilds them)."""
        files = self._project_files(project, fleet_epoch)
        rows = sum(pq.ParquetFile(path).metadata.num_rows for path in files)
        for directory in {path.parent for path in files}:
            view, store = directory.with_name(f"{directory.name}.parquet"), directory.with_name(f".{directory.name}.compacted")
            view.unlink(missing_ok=True)
            if store.is_dir():
                for version in store.iterdir():
                    _remove_tree(version) if version.is_dir() else version.unlink()
                store.rmdir()
        for path in files:
            path.unlink(missing_ok=True)
        return rows  # the source records stay: a floor set by `mark_shipped` still holds

    def mark_shipped(self, positions: dict[str, int]) -> None:
        """The next part of each source starts after its position even with no file below it (after a clean)."""
        from uploader.shipping import source_of_app_id

        for app_id, upto in positions.items():
            record = self._record(app_id)
            if record is None:
                path, generation = source_of_app_id(app_id)
                if not PurePosixPath(path).parent.parts:
                    continue  # a DB at the data root: its directory is known only from a part's lineage
                record = {"app_id": app_id, "dir": str(PurePosixPath(path).parent), "generation": generation}
            record["floor"] = upto
            self._write_record(record)

    def check(self) -> CheckResult:
        """The archive root exists (or can be created) and takes a file."""
        probe = self.root / f"{TMP_PREFIX}probe-{uuid.uuid4().hex}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            return CheckResult(False, f"parquet: cannot write to {self.root}: {exc.strerror or exc}")
        return CheckResult(True, f"parquet: {self.root} ok")


def archive_root(settings: ParquetSinkSettings, context: SinkContext) -> Path:
    default = (context.project_dir / "archive") if context.project_dir else context.lake.parent / "archive"
    return context.local(settings.path, default)


SPEC = SinkSpec(
    name="parquet",
    settings=ParquetSinkSettings,
    build=lambda settings, context: ParquetArchiveSink(archive_root(settings, context), context.stage),
    location=lambda settings, context: str(archive_root(settings, context)),
    project_path=archive_root,
    cleans="this project's part files (found by its source records) and the consolidated views built from them",
)


# -- compaction ----------------------------------------------------------------------------------------
# The consolidated view `<City>/<CODE>.parquet` is a directory of segment files (as Spark writes
# `x.parquet/`), read by pyarrow, DuckDB (`…/<CODE>.parquet/*.parquet`) and Spark alike. It is a symlink
# to a version directory `.<CODE>.compacted/v<N>/`; a compaction builds version N+1 beside it (hard
# links to the segments it keeps, one new segment) and swaps the symlink with one rename, so a reader
# sees the old view or the new one, never a mix. Segments are size-tiered: the new parts are merged with
# the newest segments only while those are at most twice as big, so every segment is more than twice
# the size of the next (O(log n) of them) and a row is rewritten O(log n) times over its life: the cost
# of one compaction grows with the new data, not with the whole history. The part files stay: they are
# the archive of record and the sink's position.

STATE_FILE = "_state.json"  # leading "_": dataset readers skip it
TIER_FACTOR = 2


@dataclass(frozen=True)
class Compaction:
    view: Path
    new_parts: int
    rows_written: int  # rows of the new segment (new parts plus the segments merged into it)
    segments: int


def compact(root: str | os.PathLike[str]) -> list[Compaction]:
    """Compact every sensor directory of an archive; sensors without new parts are left alone."""
    root = Path(root)
    done = []
    for directory in sorted(p for p in root.glob("*/*")
                            if p.is_dir() and not p.is_symlink() and not p.name.startswith((".", "_"))):
        if part_files(directory):
            done.append(compact_sensor(directory))
    return done


def compact_sensor(directory: str | os.PathLike[str]) -> Compaction:
    """Fold the part files of `<City>/<CODE>/` not yet compacted into the view `<City>/<CODE>.parquet`."""
    directory = Path(directory)
    view = directory.with_name(f"{directory.name}.parquet")
    store = directory.with_name(f".{directory.name}.compacted")
    store.mkdir(exist_ok=True)
    with open(store / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one compaction per sensor at a time; writers of parts are not held
        current = view.resolve() if view.is_symlink() else None
        state: dict[str, Any] = (json.loads((current / STATE_FILE).read_text()) if current
                                 else {"version": 0, "upto": {}, "segments": []})
        # Per generation, the last id already in the view: the state stays small however long the history.
        upto = dict(state["upto"])
        new = [f for f in part_files(directory) if f.first > upto.get(f.generation, 0)]
        if not new:
            return Compaction(view, 0, 0, len(state["segments"]))
        new_rows = sum(pq.ParquetFile(f.path).metadata.num_rows for f in new)
        segments = list(state["segments"])
        merged: list[dict] = []
        while segments and segments[-1]["rows"] <= TIER_FACTOR * (new_rows + sum(s["rows"] for s in merged)):
            merged.insert(0, segments.pop())
        version = state["version"] + 1
        target = store / f"v{version}"
        staging = store / f"{TMP_PREFIX}v{version}-{uuid.uuid4().hex}"
        staging.mkdir()
        for segment in segments:
            os.link(current / segment["name"], staging / segment["name"])
        inputs = [current / s["name"] for s in merged] + [f.path for f in new]
        name = f"segment-{version:06d}.parquet"
        rows = _concatenate(inputs, staging / name)
        segments.append({"name": name, "rows": rows})
        for file in new:
            upto[file.generation] = max(upto.get(file.generation, 0), file.last)
        (staging / STATE_FILE).write_text(json.dumps(
            {"version": version, "upto": upto, "segments": segments}))
        for written in (staging / name, staging / STATE_FILE):
            with open(written, "rb") as handle:
                os.fsync(handle.fileno())
        fsync_dir(staging)
        os.rename(staging, target)
        link = view.with_name(f"{TMP_PREFIX}{view.name}-{uuid.uuid4().hex}")
        os.symlink(os.path.relpath(target, view.parent), link)
        os.replace(link, view)
        fsync_dir(view.parent)
        # Keep the previous version for readers still listing it; older ones only drop hard links.
        for old in store.glob("v*"):
            if old.name not in (target.name, current.name if current else None):
                _remove_tree(old)
        return Compaction(view, len(new), rows, len(segments))


def _concatenate(inputs: list[Path], output: Path) -> int:
    rows = 0
    with pq.ParquetWriter(output, CANONICAL_SCHEMA, compression=COMPRESSION) as writer:
        for path in inputs:
            source = pq.ParquetFile(path)
            for group in range(source.num_row_groups):
                table = with_added_columns(source.read_row_group(group))  # a part written before ADDED_COLUMNS
                rows += table.num_rows
                writer.write_table(table)
    return rows


def _remove_tree(path: Path) -> None:
    for child in path.iterdir():
        child.unlink()
    path.rmdir()
