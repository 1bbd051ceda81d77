"""The edge DB reads exactly like the seed's table; readers are cheap and cannot write."""
from __future__ import annotations

import re
import sqlite3

import numpy as np
import pytest
import sqlite_utils

from sensor_manager.simulator.db import READING_COLUMNS, open_readonly, read_high_water
from sensor_manager.simulator.readings import Block
from sensor_manager.simulator.writer import SensorWriter

from .conftest import make_identity

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")


def _block(ts_ms, values=None, anomaly=None, offset=60) -> Block:
    n = len(ts_ms)
    values = np.full((n, 5), 1.5) if values is None else values
    return Block(np.array(ts_ms, dtype=np.int64), np.full(n, offset, dtype=np.int32), values,
                 np.zeros(n, dtype=np.int64) if anomaly is None else np.array(anomaly), 0, ts_ms[-1])


@pytest.fixture
def written_db(tmp_path):
    writer = SensorWriter(tmp_path / "Berlin" / "AB12", make_identity())
    writer.open()
    values = np.array([[65.0, 55.0, 1013.0, 2.5, 12.0], [np.nan] * 5, [66.0, 54.0, 1012.0, 2.4, 12.1]])
    assert writer.write(_block([1735689600123, 1735689601000, 1735689602999], values, [0, 4, 1]))
    writer.close()
    return writer.path


def test_view_has_the_seed_columns_plus_seq_all_identity_columns_filled(written_db):
    db = sqlite_utils.Database(open_readonly(written_db))
    assert tuple(db["sensor_readings"].columns_dict) == READING_COLUMNS
    conn = open_readonly(written_db)
    rows = conn.execute("SELECT * FROM sensor_readings ORDER BY id").fetchall()
    assert [d[0] for d in conn.execute("SELECT * FROM sensor_readings").description] == list(READING_COLUMNS)
    first = dict(zip(READING_COLUMNS, rows[0], strict=True))
    assert first["timestamp"] == "2025-01-01T00:00:00.123+00:00"
    assert all(TIMESTAMP.match(r[1]) for r in rows)
    assert rows[2][1] == "2025-01-01T00:00:02.999+00:00"
    identity_columns = READING_COLUMNS[READING_COLUMNS.index("firmware_version"):READING_COLUMNS.index("seq") + 1]
    assert all(first[c] is not None for c in identity_columns)
    assert (first["fault"], first["duplicate_of"]) == (None, None)  # faults are off
    assert first["original_timezone"] == "+01:00"
    assert (first["status_code"], first["anomaly_flag"], first["anomaly_type"]) == (0, 0, None)
    missing = dict(zip(READING_COLUMNS, rows[1], strict=True))
    assert (missing["anomaly_type"], missing["anomaly_flag"], missing["status_code"]) == ("missing_data", 1, 1)
    assert missing["temperature"] is None and missing["voltage"] is None
    assert rows[2][READING_COLUMNS.index("anomaly_type")] == "spike"
    assert [r[0] for r in rows] == [r[READING_COLUMNS.index("seq")] for r in rows] == [1, 2, 3]


def test_meta_and_user_version(written_db):
    conn = open_readonly(written_db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    meta = conn.execute("SELECT sensor_id, schema_version, created_at, generation FROM sensor_meta").fetchall()
    assert len(meta) == 1 and meta[0][0] == "Berlin_AB12" and meta[0][1] == 2
    assert re.fullmatch(r"[0-9a-f-]{36}", meta[0][3])


def test_reader_queries_are_range_scans_and_seeks(written_db):
    conn = open_readonly(written_db)
    plan = " ".join(r[3] for r in conn.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM sensor_readings WHERE id > ? ORDER BY id LIMIT ?", (0, 10)))
    assert "USING INTEGER PRIMARY KEY (rowid>?)" in plan
    assert "TEMP B-TREE" not in plan and "SCAN" not in plan
    for query in ("SELECT max(id) FROM sensor_readings", "SELECT max(seq) FROM sensor_readings"):
        detail = " ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + query))
        assert "SCAN" not in detail, detail


def test_high_water_and_readonly(written_db):
    high = read_high_water(written_db)
    assert (high.max_id, high.max_seq, high.last_timestamp) == (3, 3, "2025-01-01T00:00:02.999+00:00")
    conn = open_readonly(written_db)
    assert high.generation == conn.execute("SELECT generation FROM sensor_meta").fetchone()[0]
    with pytest.raises(sqlite3.OperationalError):
        conn.execute("DELETE FROM readings")


def test_negative_half_hour_offsets_render_correctly(tmp_path):
    writer = SensorWriter(tmp_path / "X" / "Y", make_identity("St_Johns_AB12", city="St. John's",
                                                              timezone="America/St_Johns"))
    writer.open()
    writer.write(_block([1735689600000], offset=-210))
    writer.write(_block([1751328000000], offset=-150))
    writer.close()
    offsets = [r[0] for r in open_readonly(writer.path).execute("SELECT original_timezone FROM sensor_readings ORDER BY id")]
    assert offsets == ["-03:30", "-02:30"]
