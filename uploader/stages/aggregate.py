"""The `aggregated` stage: per sensor, tumbling windows of `uploader.aggregated.window`, each emitted once.

Rows are first made canonical (raw's rules and dead letters). The watermark of a source is the newest
timestamp folded so far minus `allowed_lateness`; a window is emitted (count, min, max, mean per
metric, the anomaly count, first and last seq) when the watermark passes its end. A row whose window
the watermark had already passed when the row came (in id order) is late: it goes to the dead-letter
store with that reason, never into a closed window. All of this is a function of the source's rows in
id order, so batch boundaries never change what is emitted.

The state (`Windows`: newest timestamp, open windows' partial sums) belongs to one sink's position in
one source. The delivery keeps it with the checkpoint store, saved after every Delivered; after a
kill -9 between a commit and that save, it folds the rows between the saved position and the sink's
again (the edge DB is the buffer), dropping what they emit (the sink already holds it).
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from uploader.batch import Lineage, Rejection
from uploader.schema import AGGREGATE_SCHEMA, METRICS
from uploader.stages.raw import RawStage, _constant

MEASURES = ("count", "min", "max", "sum")
# A partial window: what merges associatively (sums, not means).
PARTIAL_SCHEMA = pa.schema([
    pa.field("window_start", pa.int64()),
    pa.field("sensor_id", pa.string()),
    pa.field("city", pa.string()),
    pa.field("rows", pa.int64()),
    pa.field("anomaly_count", pa.int64()),
    pa.field("first_seq", pa.int64()),
    pa.field("last_seq", pa.int64()),
    *(pa.field(f"{metric}_{measure}", pa.int64() if measure == "count" else pa.float64())
      for metric in METRICS for measure in MEASURES),
])
# How partials combine: rows → partial (first group-by), partials → partial (merge).
_FROM_ROWS = [("sensor_id", "max", "sensor_id"), ("city", "max", "city"), ("seq", "count", "rows"),
              ("anomaly", "sum", "anomaly_count"), ("seq", "min", "first_seq"), ("seq", "max", "last_seq"),
              *((metric, measure, f"{metric}_{measure}") for metric in METRICS for measure in MEASURES)]
_MERGE = {"sensor_id": "max", "city": "max", "rows": "sum", "anomaly_count": "sum", "first_seq": "min",
          "last_seq": "max", **{f"{metric}_{measure}": "sum" if measure in ("count", "sum") else measure
                                for metric in METRICS for measure in MEASURES}}
NO_TIME = -(2 ** 62)  # "nothing folded yet": below any timestamp, far from int64 overflow


@dataclass
class Windows:
    """One source's aggregation state after its rows up to `position` (a source id)."""

    position: int = 0
    newest_us: int = NO_TIME
    open: pa.Table = field(default_factory=PARTIAL_SCHEMA.empty_table)

    def copy(self) -> Windows:
        return replace(self)

    def to_bytes(self) -> bytes:
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, PARTIAL_SCHEMA) as writer:
            writer.write_table(self.open)
        header = json.dumps({"position": self.position, "newest_us": self.newest_us}).encode()
        return len(header).to_bytes(4, "big") + header + sink.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Windows:
        size = int.from_bytes(data[:4], "big")
        header = json.loads(data[4:4 + size])
        table = pa.ipc.open_stream(data[4 + size:]).read_all()
        return cls(int(header["position"]), int(header["newest_us"]), table)


def _group(table: pa.Table, aggregations: list[tuple[str, str, str]]) -> pa.Table:
    grouped = table.group_by("window_start", use_threads=False).aggregate([(c, f) for c, f, _ in aggregations])
    names = {f"{column}_{function}": name for column, function, name in aggregations}
    grouped = grouped.rename_columns([names.get(name, name) for name in grouped.column_names])
    return grouped.select(PARTIAL_SCHEMA.names).cast(PARTIAL_SCHEMA)


class AggregateStage:
    name = "aggregated"
    schema = AGGREGATE_SCHEMA

    def __init__(self, window_seconds: int, lateness_seconds: float, window: str):
        self.window_us = int(window_seconds) * 1_000_000
        self.lateness_us = int(round(lateness_seconds * 1_000_000))
        self.window = window
        self.raw = RawStage()

    def fold(self, windows: Windows, chunk: pa.RecordBatch, lineage: Lineage) -> tuple[pa.RecordBatch | None, list[Rejection]]:
        """Fold a chunk (rows in id order) into `windows`; the windows it closes, and the rows rejected or late."""
        rows, rejected = self.raw.apply(chunk, lineage)
        if rows is None:
            return None, rejected
        ts = pc.cast(rows.column("timestamp"), pa.int64()).to_numpy()
        newest = np.maximum.accumulate(ts)
        before = np.maximum(windows.newest_us, np.concatenate(([NO_TIME], newest[:-1])))
        start = ts // self.window_us * self.window_us
        late = start + self.window_us <= before - self.lateness_us
        windows.newest_us = max(windows.newest_us, int(newest[-1]))
        if late.any():
            rejected += self._late(rows, late, before)
            rows = rows.filter(pa.array(~late))
        if rows.num_rows:
            fresh = _group(pa.table({
                "window_start": pa.array(start[~late]), "sensor_id": rows.column("sensor_id"),
                "city": rows.column("city"), "seq": rows.column("seq"),
                "anomaly": pc.cast(pc.fill_null(rows.column("anomaly_flag"), False), pa.int64()),
                **{metric: rows.column(metric) for metric in METRICS}}),
                _FROM_ROWS)
            merged = pa.concat_tables([windows.open, fresh])
            windows.open = _group(merged, [(name, function, name) for name, function in _MERGE.items()])
        return self._close(windows, lineage), rejected

    def _close(self, windows: Windows, lineage: Lineage) -> pa.RecordBatch | None:
        """Take the windows whose end the watermark has passed out of `windows`, as aggregate rows."""
        starts = windows.open.column("window_start")
        closed = pc.less_equal(pc.add(starts, self.window_us), windows.newest_us - self.lateness_us)
        if not pc.any(closed).as_py():
            return None
        done = windows.open.filter(closed).sort_by("window_start")
        windows.open = windows.open.filter(pc.invert(closed))
        return self._emitted(done, lineage)

    def _emitted(self, done: pa.Table, lineage: Lineage) -> pa.RecordBatch:
        count = done.num_rows
        start = pc.cast(done.column("window_start"), pa.timestamp("us", tz="UTC"))
        columns = {
            "window_start": start,
            "window_end": pc.cast(pc.add(done.column("window_start"), self.window_us), pa.timestamp("us", tz="UTC")),
            "date": pc.cast(start, pa.date32()),
            "window": _constant(self.window, pa.string(), count),
            "project": _constant(lineage.project, pa.string(), count),
            "fleet_epoch": _constant(lineage.fleet_epoch, pa.int64(), count),
            "source": _constant(lineage.source, pa.string(), count),
            "generation": _constant(lineage.generation, pa.string(), count),
            "uploader_id": _constant(lineage.uploader_id, pa.string(), count),
            "stage": _constant(self.name, pa.string(), count),
        }
        for metric in METRICS:
            columns[f"{metric}_mean"] = pc.divide(done.column(f"{metric}_sum"), pc.cast(done.column(f"{metric}_count"), pa.float64()))
        arrays = [columns[f.name] if f.name in columns else done.column(f.name) for f in AGGREGATE_SCHEMA]
        table = pa.Table.from_arrays([pc.cast(a, f.type) for a, f in zip(arrays, AGGREGATE_SCHEMA, strict=True)],
                                     schema=AGGREGATE_SCHEMA)
        return table.combine_chunks().to_batches()[0]

    def _late(self, rows: pa.RecordBatch, late: np.ndarray, before: np.ndarray) -> list[Rejection]:
        source_ids = rows.column("source_id").to_numpy()
        ts = pc.cast(rows.column("timestamp"), pa.int64()).to_numpy()
        return [Rejection(int(source_ids[i]), f"late: {(before[i] - ts[i]) / 1e6:g} s behind the newest reading, "
                                              f"beyond the allowed lateness; its {self.window} window was already emitted")
                for i in np.flatnonzero(late)]
