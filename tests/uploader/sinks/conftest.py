"""Sink fixtures: every sink the contract suite runs against, with a way to stop and restart its backend."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pyarrow as pa
import pytest

from uploader.batch import Batch, Lineage, Part
from uploader.sinks.base import Sink
from uploader.sinks.delta import DeltaSink
from uploader.stages.raw import RawStage


@dataclass
class SinkUnderTest:
    sink: Sink
    read_back: Callable[[], pa.Table]
    stop_backend: Callable[[], None]
    start_backend: Callable[[], None]
    misconfigured: Callable[[], Sink]


def _delta(tmp_path: Path) -> SinkUnderTest:
    table = tmp_path / "lake" / "sensor_readings"
    parked = tmp_path / "parked"

    def stop() -> None:  # the store vanishes and a file blocks its place: every write fails
        table.parent.mkdir(parents=True, exist_ok=True)
        if table.exists():
            shutil.move(table, parked)
        table.write_text("not a table")

    def start() -> None:
        table.unlink()
        if parked.exists():
            shutil.move(parked, table)

    def misconfigured() -> Sink:
        blocker = tmp_path / "blocker"
        blocker.write_text("a file where the lake should be")
        return DeltaSink(blocker / "sensor_readings")

    def read_back() -> pa.Table:
        from deltalake import DeltaTable

        return DeltaTable(str(table)).to_pyarrow_table()

    return SinkUnderTest(DeltaSink(table), read_back, stop, start, misconfigured)


SINK_FACTORIES = {"delta": _delta}


@pytest.fixture(params=sorted(SINK_FACTORIES))
def sink_under_test(request, tmp_path: Path) -> SinkUnderTest:
    return SINK_FACTORIES[request.param](tmp_path)


def canonical_rows(first_id: int, last_id: int, *, sensor_id: str = "New_York_AB12", lineage: Lineage | None = None) -> pa.RecordBatch:
    """Canonical rows for source ids first_id..last_id (seq = id), as the raw stage would produce them."""
    ids = list(range(first_id, last_id + 1))
    n = len(ids)
    raw = {
        "source_id": pa.array(ids, pa.int64()),
        "ts_us": pa.array([1_748_779_200_000_000 + i * 1_000_000 for i in ids], pa.int64()),
        "sensor_id": [sensor_id] * n, "location": ["New York"] * n,
        "temperature": [21.5] * n, "humidity": [50.0] * n, "pressure": [1013.0] * n, "vibration": [0.1] * n,
        "voltage": [12.0] * n, "height_meters": [None] * n, "orientation_degrees": [None] * n,
        "latitude": [40.7] * n, "longitude": [-74.0] * n, "status_code": pa.array([0] * n, pa.int64()),
        "anomaly_flag": pa.array([0] * n, pa.int64()), "seq": pa.array(ids, pa.int64()),
        "bad_metrics": pa.array([0] * n, pa.int64()),
    }
    for name in ("anomaly_type", "firmware_version", "model", "manufacturer", "serial_number", "manufacture_date",
                 "installation_date", "deployment_type", "instance_id", "sensor_type", "original_timezone"):
        raw[name] = pa.array([None] * n, pa.string())
    kept, rejected = RawStage().apply(pa.RecordBatch.from_pydict(raw), lineage or LINEAGE)
    assert not rejected
    return kept


def _code(source: int) -> str:
    return "AB12" if source == 0 else f"CD{source:02d}"


def source_lineage(source: int) -> Lineage:
    return Lineage("test", 1, f"New_York/{_code(source)}/sensor_data.db", "gen-1", "new-york", "New_York")


def source_app_id(source: int) -> str:
    return f"sensor-manager/test/epoch-1/ship-0/New_York/{_code(source)}/sensor_data.db@gen-1"


LINEAGE = source_lineage(0)
APP_ID = source_app_id(0)


def make_part(after: int, upto: int, rows: list[pa.RecordBatch] | None = None, *, source: int = 0) -> Part:
    lineage = source_lineage(source)
    chunks = rows if rows is not None else [canonical_rows(after + 1, upto, sensor_id=f"New_York_{_code(source)}",
                                                           lineage=lineage)]

    def produce(rejected) -> Iterator[pa.RecordBatch]:
        yield from chunks

    return Part(source_app_id(source), after, upto, lineage, produce)


def make_batch(after: int, upto: int, rows: list[pa.RecordBatch] | None = None, *, source: int = 0) -> Batch:
    return Batch([make_part(after, upto, rows, source=source)])


@pytest.fixture
def app_id() -> str:
    """The app id of every `batch_of` batch (source 0)."""
    return APP_ID


@pytest.fixture
def app_id_of():
    """`app_id_of(n)` → the app id of source n."""
    return source_app_id


@pytest.fixture
def batch_of():
    """`batch_of(after, upto, rows=None, source=0)` → a Batch of one source's canonical rows after < id <= upto."""
    return make_batch


@pytest.fixture
def batch_across():
    """`batch_across({n: (after, upto) or (after, upto, rows), ...})` → one Batch with a part per source n."""
    def build(ranges: dict[int, tuple]) -> Batch:
        return Batch([make_part(*spec, source=n) for n, spec in ranges.items()])

    return build
