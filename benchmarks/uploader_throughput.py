#!/usr/bin/env python3
"""Uploader throughput: rows/s from a 1M-row sensor DB into Delta, against a naive uploader in the same run.

value    = rows/s of the uploader (`Uploader.run_once`: ADBC read, raw stage, Delta commits with app
           transactions, reading and writing overlapped) draining a fresh 1M-row DB (targets: ≥ 250k rows/s, ≥ 3× baseline);
baseline = rows/s of the naive path on the same DB: stdlib sqlite3 fetchall → pyarrow → the same
           canonical columns → the same partitioned Delta write, 250k rows per commit.
Also: stdlib vs ADBC read rates (the reader keeps the faster), peak RSS of `python -m uploader --once`
draining a 5M-row DB (target < 300 MB; skip with --rss-rows 0), and the steady-state cycle time for an
interval's worth of rows (25 sensors × 30 s at 1 reading/s = 750 rows). Prints a summary, or with
--json one object {"name", "value", "baseline", "ratio", "unit", ...extra figures}.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import adbc_driver_sqlite.dbapi as adbc  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
from deltalake import write_deltalake  # noqa: E402

from uploader.invocation import resolve_invocation  # noqa: E402
from uploader.pipeline import Uploader  # noqa: E402
from uploader.schema import CANONICAL_SCHEMA, PARTITION_COLUMNS  # noqa: E402
from uploader.settings import UploaderSettings  # noqa: E402
from uploader.sources.generations import DDL, SEED_COLUMNS  # noqa: E402

BATCH = 250_000


def build_db(path: Path, rows: int, first: int = 1) -> None:
    """A current-generation ('ours') DB with `rows` readings, generated inside SQLite."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = not path.exists()
    con = sqlite3.connect(path)
    if fresh:
        con.execute("PRAGMA journal_mode = WAL")
        con.executescript(DDL["ours"])
        con.execute("INSERT INTO sensor_meta VALUES ('Berlin_AB12', 1, '2025-06-01', ?)", (str(uuid.uuid4()),))
    con.execute(f"""
        WITH RECURSIVE n(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM n WHERE i < {first + rows - 1})
        INSERT INTO sensor_readings (timestamp, sensor_id, temperature, humidity, pressure, vibration, voltage,
          status_code, anomaly_flag, anomaly_type, firmware_version, model, manufacturer, location, latitude, longitude,
          original_timezone, serial_number, manufacture_date, deployment_type, installation_date, height_meters,
          orientation_degrees, instance_id, sensor_type, seq)
        SELECT strftime('%Y-%m-%dT%H:%M:%f', 1748779200 + i * 0.1, 'unixepoch') || '+00:00', 'Berlin_AB12',
          20 + (i % 100) / 10.0, 50 + (i % 37) / 3.0, 1013 + (i % 11), 0.1 + (i % 7) / 100.0, 12.0 + (i % 5) / 10.0,
          0, 0, NULL, '1.4.0', 'EnvMonitor-3000', 'SensorTech', 'Berlin', 52.52, 13.405, '+02:00', 'SN-AB12',
          '2024-01-01', 'fixed', '2024-02-01', 2.5, 90.0, 'i-1', 'environmental', i FROM n""")
    con.commit()
    con.close()


def run_uploader(data: Path, work: Path, settings: UploaderSettings | None = None) -> float:
    """Seconds for the uploader (default settings unless given) to drain everything under `data` into a fresh lake."""
    invocation = resolve_invocation(sqlite=data, settings=settings or UploaderSettings(), lake=work / "lake",
                                    state_dir=work / "state")
    started = time.perf_counter()
    uploader = Uploader(invocation)
    try:
        assert uploader.run_once()
    finally:
        uploader.close()
    return time.perf_counter() - started


def run_naive(db: Path, work: Path) -> float:
    """The naive path: fetchall → Python columns → Arrow → the same canonical Delta write."""
    started = time.perf_counter()
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    columns = ", ".join([*SEED_COLUMNS, "seq"])
    last = 0
    while rows := con.execute(f"SELECT {columns} FROM sensor_readings WHERE id > ? ORDER BY id LIMIT ?", (last, BATCH)).fetchall():
        data = dict(zip([*SEED_COLUMNS, "seq"], map(list, zip(*rows, strict=True)), strict=True))
        n = len(rows)
        timestamp = pc.cast(pa.array(data.pop("timestamp")), pa.timestamp("us", tz="UTC"))
        source_id = data.pop("id")
        extra = {"timestamp": timestamp, "city": ["Berlin"] * n, "date": pc.cast(timestamp, pa.date32()),
                 "project": ["bench"] * n, "fleet_epoch": [1] * n, "source": ["Berlin/AB12/sensor_data.db"] * n,
                 "generation": ["g"] * n, "source_id": source_id, "uploader_id": ["naive"] * n, "stage": ["raw"] * n,
                 "anomaly_flag": [bool(v) for v in data.pop("anomaly_flag")],
                 "fault": [None] * n, "duplicate_of": [None] * n}  # the bench DB has no delivery faults
        merged = {**data, **extra}
        table = pa.Table.from_arrays([pa.array(merged[f.name], f.type) for f in CANONICAL_SCHEMA], schema=CANONICAL_SCHEMA)
        write_deltalake(str(work / "naive-lake"), table, mode="append", partition_by=PARTITION_COLUMNS)
        last = source_id[-1]
    con.close()
    return time.perf_counter() - started


def read_rates(db: Path, rows: int) -> tuple[float, float]:
    """(stdlib, ADBC) rows/s reading every column into Arrow, in 250k-row pages."""
    columns = ", ".join([*SEED_COLUMNS, "seq"])
    query = f"SELECT {columns} FROM sensor_readings WHERE id > ? AND id <= ?"
    started = time.perf_counter()
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    for after in range(0, rows, BATCH):
        fetched = con.execute(query, (after, after + BATCH)).fetchall()
        pa.Table.from_arrays([pa.array(c) for c in zip(*fetched, strict=True)], names=[*SEED_COLUMNS, "seq"])
    stdlib = rows / (time.perf_counter() - started)
    started = time.perf_counter()
    with adbc.connect(f"file:{db}?mode=ro") as bulk, bulk.cursor() as cursor:
        for after in range(0, rows, BATCH):
            cursor.execute(query, (after, after + BATCH))
            cursor.fetch_arrow_table()
    return stdlib, rows / (time.perf_counter() - started)


def peak_rss_mb(rows: int, work: Path) -> float:
    """VmHWM of a fresh `python -m uploader --once` process (its own peak, not inherited from this one)."""
    data = work / "rss" / "data"
    build_db(data / "Berlin" / "AB12" / "sensor_data.db", rows)
    probe = ("import sys; from uploader.cli import main; code = main(sys.argv[1:]);"
             "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", probe, "--sqlite", str(data), "--lake", str(work / "rss" / "lake"),
                           "--state-dir", str(work / "rss" / "state")], check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True, cwd=Path(__file__).resolve().parent.parent)
    return int(done.stdout.split()[-1]) / 1024


def steady_cycle_seconds(data: Path, work: Path, db: Path, rows_per_cycle: int = 750, cycles: int = 5) -> float:
    invocation = resolve_invocation(sqlite=data, settings=UploaderSettings(), lake=work / "lake", state_dir=work / "state",
                                    continuous=True, interval=30)
    uploader = Uploader(invocation)
    times = []
    try:
        uploader.cycle(fixed_targets=False)
        end = uploader.tracked[db].source.end_id()
        for _ in range(cycles):
            build_db(db, rows_per_cycle, first=end + 1)
            end += rows_per_cycle
            started = time.perf_counter()
            uploader.cycle(fixed_targets=False)
            times.append(time.perf_counter() - started)
    finally:
        uploader.close()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rss-rows", type=int, default=5_000_000, help="rows of the peak-RSS run (0: skip it)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="uploader-bench-"))
    try:
        data = work / "data"
        db = data / "Berlin" / "AB12" / "sensor_data.db"
        build_db(db, args.rows)
        stdlib_read, adbc_read = read_rates(db, args.rows)
        naive = args.rows / run_naive(db, work)
        ours = args.rows / run_uploader(data, work)
        steady = steady_cycle_seconds(data, work, db)
        rss = peak_rss_mb(args.rss_rows, work) if args.rss_rows else None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"name": "uploader_throughput", "value": round(ours), "baseline": round(naive), "ratio": round(ours / naive, 2),
              "unit": "rows/s", "rows": args.rows, "read_stdlib_rows_per_s": round(stdlib_read),
              "read_adbc_rows_per_s": round(adbc_read), "steady_cycle_seconds_750_rows": round(steady, 4),
              "peak_rss_mb": round(rss, 1) if rss else None, "peak_rss_rows": args.rss_rows or None}
    if args.json:
        print(json.dumps(result))
        return
    print(f"uploader: {ours:,.0f} rows/s; naive fetchall → Arrow → Delta: {naive:,.0f} rows/s; ratio {ours / naive:.2f}x "
          f"(targets ≥ 250,000 rows/s and ≥ 3x)")
    print(f"read into Arrow: stdlib sqlite3 {stdlib_read:,.0f} rows/s, ADBC {adbc_read:,.0f} rows/s")
    print(f"steady state: {steady * 1000:.0f} ms per cycle of 750 new rows")
    if rss:
        print(f"peak RSS draining {args.rss_rows:,} rows: {rss:.0f} MB (target < 300 MB)")


if __name__ == "__main__":
    main()
