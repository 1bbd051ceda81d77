#!/usr/bin/env python3
"""Uploader sinks: rows/s of a backlog into each sink, against one plain pyarrow.parquet write of the same rows.

The backlog is canonical rows (the raw stage already applied) of SOURCES sensors, shipped as the
pipeline ships them: batches of up to 250k rows with one part per source. Each sink starts empty:
local Delta, the Parquet archive, and S3 in both layouts against a moto S3 server on loopback (in this
process: its request handling shares the cores and the GIL with the writer, so the S3 figures are a
floor, not what a real bucket gives). baseline = rows/s of `pyarrow.parquet.write_table` of all the
rows in one file (median of 3 after a warm-up), in the same run;
baseline_zstd = the same write with zstd, the archive's and the S3 objects' codec. value = the
slowest sink's rows/s; every sink's figure is listed.
Default 200k rows (a 1M-row run takes minutes on a busy 2-core machine): --rows 1000000 for the full
backlog. Prints a summary, or with --json one object {"name", "value", "baseline", "ratio", "unit", "sinks"}.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from timing import median_seconds  # noqa: E402
from uploader.batch import Batch, Lineage, Part  # noqa: E402
from uploader.sinks.base import Delivered  # noqa: E402
from uploader.sinks.delta import DeltaSink  # noqa: E402
from uploader.sinks.parquet import ParquetArchiveSink  # noqa: E402
from uploader.stages.raw import RawStage  # noqa: E402

SOURCES = 4
BATCH = 250_000
CHUNK = 50_000  # rows per record batch, as the reader hands them over


def canonical(source: int, first: int, last: int) -> list[pa.RecordBatch]:
    """Canonical rows of sensor `source`, ids first..last, one reading a second."""
    lineage = lineage_of(source)
    chunks = []
    for start in range(first, last + 1, CHUNK):
        ids = np.arange(start, min(start + CHUNK, last + 1), dtype=np.int64)
        n = len(ids)
        raw = {
            "source_id": ids, "ts_us": 1_748_779_200_000_000 + ids * 1_000_000,
            "sensor_id": pa.array([f"New_York_S{source:03d}"] * n), "location": pa.array(["New York"] * n),
            "temperature": 20 + (ids % 100) / 10.0, "humidity": 50 + (ids % 37) / 3.0, "pressure": 1013.0 + ids % 11,
            "vibration": 0.1 + (ids % 7) / 100.0, "voltage": 12.0 + (ids % 5) / 10.0,
            "height_meters": pa.nulls(n, pa.float64()), "orientation_degrees": pa.nulls(n, pa.float64()),
            "latitude": np.full(n, 40.7), "longitude": np.full(n, -74.0), "status_code": np.zeros(n, np.int64),
            "anomaly_flag": np.zeros(n, np.int64), "seq": ids, "bad_metrics": np.zeros(n, np.int64),
        }
        for name in ("anomaly_type", "firmware_version", "model", "manufacturer", "serial_number", "manufacture_date",
                     "installation_date", "deployment_type", "instance_id", "sensor_type", "original_timezone"):
            raw[name] = pa.nulls(n, pa.string())
        kept, rejected = RawStage().apply(pa.RecordBatch.from_pydict(raw), lineage)
        assert not rejected
        chunks.append(kept)
    return chunks


def lineage_of(source: int) -> Lineage:
    return Lineage("bench", 1, f"New_York/S{source:03d}/sensor_data.db", "gen-1", "bench", "New_York")


def app_id_of(source: int) -> str:
    return f"sensor-manager/bench/epoch-1/ship-0/New_York/S{source:03d}/sensor_data.db@gen-1"


def backlog(rows: int) -> list[list[tuple[int, int, int, list[pa.RecordBatch]]]]:
    """Batches of (source, after, upto, chunks), each batch one part per source."""
    per_source = rows // SOURCES
    step = BATCH // SOURCES
    batches = []
    for after in range(0, per_source, step):
        upto = min(after + step, per_source)
        batches.append([(source, after, upto, canonical(source, after + 1, upto)) for source in range(SOURCES)])
    return batches


def as_batch(spec) -> Batch:
    def part(source, after, upto, chunks) -> Part:
        return Part(app_id_of(source), after, upto, lineage_of(source), lambda rejected: iter(chunks))

    return Batch([part(*entry) for entry in spec])


def rate_of(sink, batches, rows: int) -> float:
    started = time.perf_counter()
    for spec in batches:
        outcome = sink.write(as_batch(spec))
        if not isinstance(outcome, Delivered):
            raise SystemExit(f"{sink.name}: {outcome}")
    return rows / (time.perf_counter() - started)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rows", type=int, default=200_000, help="backlog rows (the issue's figure: 1000000)")
    parser.add_argument("--no-s3", action="store_true", help="skip the two S3 layouts")
    args = parser.parse_args()

    batches = backlog(args.rows)
    rows = sum(upto - after for spec in batches for _, after, upto, _ in spec)
    work = Path(tempfile.mkdtemp(prefix="uploader-sinks-"))
    try:
        table = pa.Table.from_batches([c for spec in batches for *_, chunks in spec for c in chunks])
        baseline = rows / median_seconds(lambda: pq.write_table(table, work / "baseline.parquet"), runs=3)
        # The same write with the archive's codec: how much of a sink's gap is zstd rather than the sink.
        zstd = rows / median_seconds(lambda: pq.write_table(table, work / "zstd.parquet", compression="zstd"), runs=3)

        sinks = {"delta": lambda: DeltaSink(work / "lake" / "sensor_readings"),
                 "archive": lambda: ParquetArchiveSink(work / "archive")}
        server = None
        if not args.no_s3:
            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
            os.environ.update({"AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": "us-east-1",
                               "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_ALLOW_HTTP": "true",
                               "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
            port = free_port()
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            server.start()
            from uploader.sinks.s3 import S3Sink

            endpoint = f"http://127.0.0.1:{port}"
            S3Sink("bench", layout="parquet", endpoint_url=endpoint).client.create_bucket(Bucket="bench")
            sinks["s3-delta"] = lambda: S3Sink("bench", "delta-layout", layout="delta", endpoint_url=endpoint)
            sinks["s3-parquet"] = lambda: S3Sink("bench", "parquet-layout", layout="parquet", endpoint_url=endpoint)
        try:
            rates = {name: rate_of(make(), batches, rows) for name, make in sinks.items()}
        finally:
            if server is not None:
                server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    slowest = min(rates, key=lambda sink: rates[sink])
    result = {"name": "uploader_sinks", "value": round(rates[slowest]), "baseline": round(baseline),
              "ratio": round(rates[slowest] / baseline, 3), "unit": "rows/s", "rows": rows, "slowest": slowest,
              "baseline_zstd": round(zstd),
              "sinks": {name: {"rows_per_s": round(rate), "ratio": round(rate / baseline, 3)} for name, rate in rates.items()}}
    if args.json:
        print(json.dumps(result))
        return
    print(f"{rows:,} rows; baseline (one pyarrow.parquet write): {baseline:,.0f} rows/s; with zstd: {zstd:,.0f} rows/s")
    for name, rate in rates.items():
        print(f"  {name:<11} {rate:>12,.0f} rows/s  ratio {rate / baseline:.3f}")


if __name__ == "__main__":
    main()
