"""Several sinks at once, end to end against the loopback S3 server: each sink keeps its own position per
source, a down sink never holds back another, a sink added later back-fills, and every
(sensor_id, fleet_epoch, seq) lands once in each sink through outages and kill -9."""
from __future__ import annotations

import io
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from tests.uploader.chaos import kill_9_repeatedly, sensors_writing
from uploader.pipeline import Uploader

Key = tuple[str, int, int]


# -- reading every sink back -----------------------------------------------------------------------
def _keys(table: pa.Table) -> Counter[Key]:
    data = table.select(["sensor_id", "fleet_epoch", "seq"]).to_pydict()
    return Counter(zip(data["sensor_id"], data["fleet_epoch"], data["seq"], strict=True))


def lake_keys(project: Path) -> Counter[Key]:
    table = project / "lake" / "sensor_readings"
    return _keys(DeltaTable(str(table)).to_pyarrow_table()) if (table / "_delta_log").is_dir() else Counter()


def archive_keys(project: Path) -> Counter[Key]:
    # Published part files only: a `.tmp-*` file may be renamed while a running uploader is read.
    files = sorted(f for f in (project / "archive").glob("*/*/*.parquet") if not f.name.startswith("."))
    return _keys(pa.concat_tables([pq.read_table(f) for f in files])) if files else Counter()


def bucket_keys(server, bucket: str, layout: str, prefix: str = "sensor-manager") -> Counter[Key]:
    if layout == "delta":
        options = {"AWS_ENDPOINT_URL": server.endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
                   "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        return _keys(DeltaTable(f"s3://{bucket}/{prefix}/sensor_readings", storage_options=options).to_pyarrow_table())
    client = server.client()
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/city=")
            for o in page.get("Contents", [])]
    tables = [pq.read_table(io.BytesIO(client.get_object(Bucket=bucket, Key=k)["Body"].read())) for k in keys]
    return _keys(pa.concat_tables(tables)) if tables else Counter()


def edge_counts(project: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for db in (project / "data").glob("*/*/sensor_data.db"):
        with sqlite3.connect(db) as con:
            for sensor_id, count in con.execute("SELECT sensor_id, count(*) FROM sensor_readings GROUP BY sensor_id"):
                counts[sensor_id] += count
    return counts


def assert_once_each(keys: Counter[Key], edge: Counter[str], sink: str) -> None:
    assert keys and max(keys.values()) == 1, f"{sink}: a key arrived twice"
    assert Counter(sensor_id for sensor_id, _, _ in keys) == edge, f"{sink}: counts differ from the edge DBs'"


# -- in-process: positions per sink ----------------------------------------------------------------
def _enable(inv, server, bucket: str, layout: str = "parquet", archive: bool = True):
    inv.settings.sinks.parquet.enabled = archive
    s3 = inv.settings.sinks.s3
    s3.enabled, s3.bucket, s3.layout, s3.endpoint_url = True, bucket, layout, server.endpoint
    s3.retry.initial_seconds = s3.retry.max_seconds = 0.01
    return inv


def _cycles(uploader: Uploader, count: int) -> None:
    for _ in range(count):
        for backoff in uploader.backoffs.values():
            backoff.not_before = 0.0
        uploader.cycle(fixed_targets=False)


def test_a_down_sink_holds_back_no_other_and_catches_up_alone(s3, project, sensor_db, invocation):
    db = sensor_db(project / "data" / "Berlin" / "AA11" / "sensor_data.db", sensor_id="Berlin_AA11")
    db.append(40)
    bucket = s3.new_bucket()
    uploader = Uploader(_enable(invocation(continuous=True), s3, bucket))
    try:
        s3.stop()
        _cycles(uploader, 1)
        assert sum(lake_keys(project).values()) == sum(archive_keys(project).values()) == 40
        assert uploader.sink_status["s3"].retries >= 1 and uploader.sink_status["s3"].rows_shipped == 0
        db.append(10)
        _cycles(uploader, 1)
        assert sum(lake_keys(project).values()) == 50  # still shipping while s3 is down
        uploader.write_status()
        s3.start()
        _cycles(uploader, 2)
    finally:
        uploader.close()
    edge = edge_counts(project)
    for sink, keys in (("delta", lake_keys(project)), ("parquet", archive_keys(project)), ("s3", bucket_keys(s3, bucket, "parquet"))):
        assert_once_each(keys, edge, sink)
    assert {name: s.rows_shipped for name, s in uploader.sink_status.items()} == {"delta": 50, "parquet": 50, "s3": 50}


def test_a_sink_added_later_back_fills_from_the_first_row_and_the_others_ship_nothing_again(s3, project, sensor_db, invocation):
    sensor_db(project / "data" / "Berlin" / "AA11" / "sensor_data.db", sensor_id="Berlin_AA11").append(30)
    first = Uploader(invocation())
    try:
        assert first.run_once()
    finally:
        first.close()
    bucket = s3.new_bucket()
    later = Uploader(_enable(invocation(), s3, bucket, layout="delta"))
    try:
        assert later.run_once()
    finally:
        later.close()
    assert {name: s.rows_shipped for name, s in later.sink_status.items()} == {"delta": 0, "parquet": 30, "s3": 30}
    edge = edge_counts(project)
    assert_once_each(archive_keys(project), edge, "parquet")
    assert_once_each(bucket_keys(s3, bucket, "delta"), edge, "s3")


def test_the_ship_namespace_does_not_need_the_local_lake(project, sensor_db, invocation):
    sensor_db(project / "data" / "Berlin" / "AA11" / "sensor_data.db", sensor_id="Berlin_AA11").append(20)
    inv = invocation()
    inv.settings.sinks.delta.enabled = False
    inv.settings.sinks.parquet.enabled = True
    (project / "lake").write_text("not a directory: the lake is unusable")  # read for the namespace before this change
    uploader = Uploader(inv)
    try:
        assert uploader.run_once()
    finally:
        uploader.close()
    assert sum(archive_keys(project).values()) == 20


# -- subprocesses: sensors writing, the uploader running, S3 stopping or the uploader killed ---------
def _config(project: Path, server, bucket: str, layout: str) -> Path:
    config = project / "sensor-manager.yaml"
    config.write_text(
        "uploader:\n  sinks:\n    delta: {batch_size: 300}\n    parquet: {enabled: true, batch_size: 300}\n"
        f"    s3: {{enabled: true, bucket: {bucket}, layout: {layout}, endpoint_url: '{server.endpoint}', batch_size: 300,\n"
        "         retry: {initial_seconds: 0.05, max_seconds: 0.5}}\n")
    return config


def _uploader(project: Path, config: Path) -> list[str]:
    return [sys.executable, "-m", "uploader", "--sqlite", str(project / "data"), "--project-dir", str(project),
            "--config", str(config)]


def _final_check(project: Path, config: Path, server, bucket: str, layout: str) -> None:
    final = subprocess.run([*_uploader(project, config), "--once"], capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-3000:]
    edge = edge_counts(project)
    assert sum(edge.values()) > 500
    assert_once_each(lake_keys(project), edge, "delta")
    assert_once_each(archive_keys(project), edge, "parquet")
    assert_once_each(bucket_keys(server, bucket, layout), edge, f"s3 ({layout})")


def outage(project: Path, server, seconds: float, layout: str, rows_per_second: int | None = None) -> None:
    bucket = server.new_bucket()
    config = _config(project, server, bucket, layout)
    log = project / "uploader.log"
    with sensors_writing(project, rows_per_second):
        with open(log, "wb") as sink_log:
            uploader = subprocess.Popen([*_uploader(project, config), "--continuous", "--interval", "0.2"],
                                        stdout=subprocess.DEVNULL, stderr=sink_log)
        try:
            time.sleep(3)
            server.stop()
            before = sum(lake_keys(project).values()), sum(archive_keys(project).values())  # each sink against itself
            time.sleep(seconds)
            during = sum(lake_keys(project).values()), sum(archive_keys(project).values())
            server.start()
            time.sleep(3)
        finally:
            server.start()
            uploader.send_signal(signal.SIGTERM)
            uploader.wait(timeout=60)
    assert during[0] > before[0] and during[1] > before[1], \
        f"the local sinks stopped shipping while S3 was down: {during} {log.read_text()[-4000:]}"
    _final_check(project, config, server, bucket, layout)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["delta", "parquet"])
def test_an_s3_outage_while_sensors_write_loses_and_duplicates_nothing_in_any_sink(s3, project, layout):
    outage(project, s3, seconds=6, layout=layout)


@pytest.mark.soak
@pytest.mark.timeout(900)
@pytest.mark.parametrize("layout", ["delta", "parquet"])
def test_a_sixty_second_s3_outage(s3, project, layout):
    # Paced: at full speed the writers outrun 300-row batches to S3 (a backlog of ~250k rows after the outage).
    outage(project, s3, seconds=60, layout=layout, rows_per_second=200)


def chaos(project: Path, server, kills: int, seed: int, layout: str) -> None:
    rng = random.Random(seed)
    bucket = server.new_bucket()
    config = _config(project, server, bucket, layout)
    with sensors_writing(project):
        kill_9_repeatedly(_uploader(project, config), kills, rng, (1.0, 3.0))  # start-up (boto3, deltalake) takes ~1 s
    _final_check(project, config, server, bucket, layout)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["delta", "parquet"])
def test_kill_9_with_every_sink_enabled_leaves_each_key_once_in_each(s3, project, layout):
    chaos(project, s3, kills=5, seed=int(os.environ.get("KILL9_SEED", "11")), layout=layout)


@pytest.mark.soak
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("layout", ["delta", "parquet"])
def test_kill_9_twenty_times_with_every_sink_enabled(s3, project, layout):
    chaos(project, s3, kills=20, seed=int(os.environ.get("KILL9_SEED", "12")), layout=layout)
