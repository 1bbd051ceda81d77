"""The SQLite source: every schema generation, identity, read-only access, damaged files."""
from __future__ import annotations

import hashlib
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from uploader.batch import Lineage
from uploader.sources.discovery import data_root_of, find_databases
from uploader.sources.sqlite import SourceNotReadyError, SourceUnreadableError, SqliteSource, needs_immutable_open
from uploader.stages.raw import RawStage

T0_US = int(datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc).timestamp() * 1_000_000)


def read_all(source: SqliteSource) -> pa.Table:
    batches = list(source.read(0, source.end_id()))
    return pa.Table.from_batches(batches)


def canonical(source: SqliteSource) -> pa.Table:
    lineage = Lineage("p", 1, source.relpath, source.generation, "u", "New_York")
    kept = [RawStage().apply(b, lineage)[0] for b in source.read(0, source.end_id())]
    return pa.Table.from_batches([k for k in kept if k is not None])


@pytest.mark.parametrize("shape", ["2025-04", "2025-05", "current", "ours"])
def test_every_generation_reads_into_the_canonical_record(tmp_path, sensor_db, shape):
    db = sensor_db(tmp_path / "data" / "New_York" / "AB12" / "sensor_data.db", shape=shape,
                   journal="delete" if shape in ("2025-04", "2025-05") else "wal")
    db.append(5)
    source = SqliteSource(db.path, tmp_path / "data")
    assert source.shape.name == shape
    table = canonical(source)
    assert table.num_rows == 5
    first = table.slice(0, 1).to_pylist()[0]
    assert first["timestamp"] == datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
    assert first["location"] == "New York" and first["city"] == "New York"
    assert first["temperature"] == 20.0 and first["sensor_id"] == "New_York_AB12"
    assert table["seq"].to_pylist() == [1, 2, 3, 4, 5] and table["source_id"].to_pylist() == [1, 2, 3, 4, 5]
    if shape == "2025-04":  # no humidity columns at all: null, and coordinates come out of the location
        assert first["humidity"] is None and first["pressure"] is None
        assert (first["latitude"], first["longitude"]) == (40.7128, -74.006)
    else:
        assert first["humidity"] == 50.0


def test_naive_timestamps_are_utc_by_default_and_local_when_configured(tmp_path, sensor_db, monkeypatch):
    db = sensor_db(tmp_path / "data" / "X" / "A" / "sensor_data.db", shape="2025-05", journal="delete")
    db.append(1)
    utc = read_all(SqliteSource(db.path, tmp_path / "data"))
    assert utc["ts_us"].to_pylist() == [T0_US]
    monkeypatch.setenv("TZ", "America/New_York")
    import time
    time.tzset()
    try:
        local = read_all(SqliteSource(db.path, tmp_path / "data", naive_local=True))
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert local["ts_us"].to_pylist() == [T0_US + 4 * 3600 * 1_000_000]  # EDT is UTC-4 in June


def test_values_of_the_wrong_type_fall_back_to_the_strict_path_without_losing_rows(tmp_path, sensor_db):
    db = sensor_db(tmp_path / "data" / "X" / "A" / "sensor_data.db")
    db.append(3000)
    db.append(1, temperature="hot", status_code=1.5)
    db.append(1, timestamp=1748779200.25)  # a REAL timestamp in a TEXT generation
    db.append(10)
    source = SqliteSource(db.path, tmp_path / "data")
    table = read_all(source)
    assert table["source_id"].to_pylist() == list(range(1, 3013))
    row = table.slice(3000, 2).to_pylist()
    assert row[0]["temperature"] is None and row[0]["bad_metrics"] == 1
    assert row[1]["ts_us"] == 1748779200250000


def test_identity_is_meta_generation_or_a_hash_of_the_first_row(tmp_path, sensor_db):
    ours = sensor_db(tmp_path / "data" / "X" / "A" / "sensor_data.db")
    ours.append(1)
    assert SqliteSource(ours.path, tmp_path / "data").generation == ours.generation
    old = sensor_db(tmp_path / "data" / "X" / "B" / "sensor_data.db", shape="current")
    old.append(2)
    with sqlite3.connect(old.path) as con:
        first = con.execute("SELECT id, timestamp, sensor_id FROM sensor_readings ORDER BY id LIMIT 1").fetchone()
    source = SqliteSource(old.path, tmp_path / "data")
    assert source.generation == "sha256-" + hashlib.sha256("\x00".join(map(str, first)).encode()).hexdigest()[:16]
    assert str(source.key) == f"X/B/sensor_data.db@{source.generation}"


def test_reading_never_writes_into_the_sensor_folder_nor_changes_the_db(tmp_path, sensor_db, tree_listing):
    db = sensor_db(tmp_path / "data" / "X" / "A" / "sensor_data.db", journal="delete")
    db.append(100)
    folder = db.path.parent
    before = tree_listing(folder)
    content = db.path.read_bytes()
    source = SqliteSource(db.path, tmp_path / "data")
    read_all(source)
    source.raw_rows([1, 2])
    source.close()
    assert tree_listing(folder) == before
    assert db.path.read_bytes() == content
    with sqlite3.connect(db.path) as con:
        assert con.execute("SELECT count(*) FROM sqlite_master WHERE type = 'index'").fetchone()[0] == 0


def test_a_wal_db_reads_and_only_sqlite_side_files_may_appear(tmp_path, sensor_db):
    db = sensor_db(tmp_path / "data" / "X" / "A" / "sensor_data.db", journal="wal")
    db.append(10)
    source = SqliteSource(db.path, tmp_path / "data")
    assert read_all(source).num_rows == 10
    source.close()
    assert {p.name for p in db.path.parent.iterdir()} <= {"sensor_data.db", "sensor_data.db-wal", "sensor_data.db-shm"}


def test_a_wal_db_on_a_read_only_directory_without_shm_opens_immutable(tmp_path, sensor_db, monkeypatch):
    db = sensor_db(tmp_path / "data" / "X" / "A" / "sensor_data.db", journal="wal")
    db.append(10)
    assert not Path(f"{db.path}-shm").exists()  # the writer closed cleanly
    monkeypatch.setattr("uploader.sources.sqlite.os.access", lambda path, mode: False)  # root ignores chmod
    assert needs_immutable_open(db.path)
    source = SqliteSource(db.path, tmp_path / "data")
    assert source.immutable and read_all(source).num_rows == 10
    assert not Path(f"{db.path}-shm").exists()


def test_corrupt_and_unready_dbs_say_so(tmp_path, sensor_db):
    garbage = tmp_path / "data" / "X" / "A" / "sensor_data.db"
    garbage.parent.mkdir(parents=True)
    garbage.write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(SourceUnreadableError, match="not a database"):
        SqliteSource(garbage, tmp_path / "data")
    empty = tmp_path / "data" / "X" / "B" / "sensor_data.db"
    empty.parent.mkdir(parents=True)
    sqlite3.connect(empty).close()
    with pytest.raises(SourceNotReadyError):
        SqliteSource(empty, tmp_path / "data")


def test_discovery_finds_every_sensor_db_and_keeps_identity_relative_to_the_project_data(tmp_path):
    for city, code in [("Berlin", "A1"), ("New_York", "B2")]:
        (tmp_path / "data" / city / code).mkdir(parents=True)
        (tmp_path / "data" / city / code / "sensor_data.db").write_bytes(b"")
        (tmp_path / "data" / city / code / "sensor_data.db-wal").write_bytes(b"")
    assert [p.parent.name for p in find_databases(tmp_path / "data")] == ["A1", "B2"]
    assert data_root_of(tmp_path / "data" / "Berlin", tmp_path / "data") == (tmp_path / "data").resolve()
    assert data_root_of(tmp_path / "data" / "Berlin", None) == (tmp_path / "data" / "Berlin").resolve()


def test_each_read_sees_new_rows_and_leaves_no_snapshot_pinning_the_wal(tmp_path, sensor_db):
    db = sensor_db(tmp_path / "data" / "X" / "A" / "sensor_data.db", journal="wal")
    db.append(10)
    source = SqliteSource(db.path, tmp_path / "data")
    assert read_all(source).num_rows == 10
    db.append(5)
    assert source.end_id() == 15
    assert sum(b.num_rows for b in source.read(10, 15)) == 5
    with sqlite3.connect(db.path) as writer:
        busy, _, _ = writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0  # an idle reader holds no read transaction
