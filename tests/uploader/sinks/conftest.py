"""Sink fixtures: every sink the contract suite runs against, with a way to stop and restart its backend."""
from __future__ import annotations

import io
import os
import shutil
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from uploader.batch import Batch, Lineage, Part
from uploader.schema import CANONICAL_SCHEMA
from uploader.sinks.base import Sink
from uploader.sinks.delta import DeltaSink
from uploader.sinks.parquet import ParquetArchiveSink
from uploader.stages.raw import RawStage


@dataclass
class SinkUnderTest:
    sink: Sink
    read_back: Callable[[], pa.Table]
    stop_backend: Callable[[], None]
    start_backend: Callable[[], None]
    misconfigured: Callable[[], Sink]


def _delta(tmp_path: Path, request) -> SinkUnderTest:
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


def _archive(tmp_path: Path, request) -> SinkUnderTest:
    root = tmp_path / "archive"
    parked = tmp_path / "parked"

    def stop() -> None:  # the archive vanishes and a file blocks its place
        if root.exists():
            shutil.move(root, parked)
        root.write_text("not a directory")

    def start() -> None:
        root.unlink()
        if parked.exists():
            shutil.move(parked, root)

    def misconfigured() -> Sink:
        blocker = tmp_path / "blocker"
        blocker.write_text("a file where the archive should be")
        return ParquetArchiveSink(blocker / "archive")

    def read_back() -> pa.Table:
        files = sorted(root.glob("*/*/*.parquet"))
        return pa.concat_tables([pq.read_table(f) for f in files]) if files else CANONICAL_SCHEMA.empty_table()

    return SinkUnderTest(ParquetArchiveSink(root), read_back, stop, start, misconfigured)


# -- a real S3 server on loopback ------------------------------------------------------------------
class S3Server:
    """moto's S3 server on 127.0.0.1 (its objects live in this process, so they survive a stop/start)."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._factory = lambda: ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server = None
        self.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self._server is None:
            self._server = self._factory()
            self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")

    def new_bucket(self) -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


S3_ENV = {  # nothing may look beyond loopback: no instance metadata, no user config, dummy keys
    "AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ALLOW_HTTP": "true",
    "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
S3_ENV_CLEARED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = S3Server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """The loopback S3 server with an environment that points nowhere else; running again after the test."""
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    for name in S3_ENV_CLEARED:
        monkeypatch.delenv(name, raising=False)
    yield s3_server
    s3_server.start()


def s3_sink(server: S3Server, bucket: str, layout: str, **kwargs) -> Sink:
    from uploader.sinks.s3 import S3Sink

    return S3Sink(bucket, "sensor-manager", layout=layout, endpoint_url=server.endpoint, **kwargs)


def _s3(layout: str) -> Callable[[Path, object], SinkUnderTest]:
    def factory(tmp_path: Path, request) -> SinkUnderTest:
        server: S3Server = request.getfixturevalue("s3")
        bucket = server.new_bucket()
        sink = s3_sink(server, bucket, layout)

        def read_back() -> pa.Table:
            if layout == "delta":
                from deltalake import DeltaTable

                return DeltaTable(sink.uri("sensor_readings"), storage_options=sink.delta.storage_options).to_pyarrow_table()
            client = server.client()
            listed = client.list_objects_v2(Bucket=bucket, Prefix="sensor-manager/city=").get("Contents", [])
            tables = [pq.read_table(io.BytesIO(client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()))
                      for item in listed]
            return pa.concat_tables(tables) if tables else CANONICAL_SCHEMA.empty_table()

        return SinkUnderTest(sink, read_back, server.stop, server.start,
                             lambda: s3_sink(server, f"missing-{uuid.uuid4().hex[:12]}", layout))

    return factory


# -- the Cosmos sink, through a fault proxy in front of the loopback server ------------------------------
def cosmos_settings(endpoint: str, key: str, **kwargs):
    from uploader.sinks.cosmos import CosmosSinkSettings

    return CosmosSinkSettings(enabled=True, endpoint=endpoint, key=key, verify_tls=False,
                              database_name=kwargs.pop("database_name", f"test-{uuid.uuid4().hex[:12]}"), **kwargs)


def cosmos_documents(settings) -> list[dict]:
    from uploader.sinks.cosmos_client import sync_container

    return list(sync_container(settings, create=False).query_items("SELECT * FROM c", enable_cross_partition_query=True))


def cosmos_table(docs: list[dict]) -> pa.Table:
    """Documents back as canonical rows (the inverse of `cosmos.documents`)."""
    from datetime import date, datetime

    rows = []
    for doc in docs:
        row = {name: doc.get(name) for name in CANONICAL_SCHEMA.names}
        row["timestamp"] = datetime.fromisoformat(row["timestamp"].replace("Z", "+00:00"))
        row["date"] = date.fromisoformat(row["date"])
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=CANONICAL_SCHEMA)


def _cosmos(tmp_path: Path, request) -> SinkUnderTest:
    from uploader.sinks.cosmos import CosmosSink

    server = request.getfixturevalue("cosmos_server")
    proxy = request.getfixturevalue("cosmos_proxy")
    settings = cosmos_settings(proxy.endpoint, server.key)
    sink = CosmosSink(settings)
    request.addfinalizer(sink.close)

    def down() -> None:
        proxy.faults.down = True

    def up() -> None:
        proxy.faults.down = False

    def misconfigured() -> Sink:
        other = CosmosSink(cosmos_settings(proxy.endpoint, server.key, create_if_missing=False))
        request.addfinalizer(other.close)
        return other

    return SinkUnderTest(sink, lambda: cosmos_table(cosmos_documents(settings.model_copy(update={"endpoint": server.endpoint}))),
                         down, up, misconfigured)


SINK_FACTORIES = {"delta": _delta, "archive": _archive, "s3-delta": _s3("delta"), "s3-parquet": _s3("parquet"),
                  "cosmos": _cosmos}


@pytest.fixture(params=sorted(SINK_FACTORIES))
def sink_under_test(request, tmp_path: Path) -> SinkUnderTest:
    return SINK_FACTORIES[request.param](tmp_path, request)


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
