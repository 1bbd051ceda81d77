"""Delivery faults: configured rates hold over ≥ 10k rows, every faulty row is labelled, off means no labels."""
from __future__ import annotations

import sqlite3
from dataclasses import replace

import numpy as np
import pytest

from sensor_manager.simulator import db
from sensor_manager.simulator.anomalies import AnomalyProfile
from sensor_manager.simulator.faults import clock_skew
from sensor_manager.simulator.readings import Block, ReadingStream
from sensor_manager.simulator.runner import run_simulation
from sensor_manager.simulator.settings import FaultSettings, NormalParameters
from sensor_manager.simulator.values import MetricTable
from sensor_manager.simulator.writer import SensorWriter

from .conftest import FixedClock, make_options, make_spec

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
NONE = {"duplicate": {"rate": 0}, "out_of_order": {"rate": 0}, "offline_burst": {"rate": 0}, "clock_skew": {"rate": 0}}


def faults(**kinds) -> FaultSettings:
    return FaultSettings.model_validate({"enabled": True, **NONE, **kinds})


def simulate(tmp_path, settings: FaultSettings, *, rate=10.0, seconds=10_000.0, max_rows=10_000, **spec):
    options = replace(make_options(rate=rate, backfill=seconds, duration=0.001, commit_max_rows=max_rows), faults=settings)
    sensor = make_spec(tmp_path, **spec)
    run_simulation([sensor], options, wall_clock=FixedClock(NOW))
    return sensor.directory / "sensor_data.db"


def rows(path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT seq, ts_ms, temperature, voltage, fault, duplicate_of FROM readings ORDER BY seq").fetchall()


def labelled(table: list[tuple], name: str) -> list[tuple]:
    return [r for r in table if r[4] == db.FAULT_CODES[name]]


@pytest.mark.parametrize("kind, settings", [
    ("duplicate", {"duplicate": {"rate": 0.05}}),
    ("out_of_order", {"out_of_order": {"rate": 0.03, "max_delay_seconds": 5}}),
    ("offline_burst", {"offline_burst": {"rate": 0.1, "duration_seconds": 2}}),
])
def test_each_rate_holds_within_ten_percent_over_90k_rows(tmp_path, kind, settings):
    table = rows(simulate(tmp_path, faults(**settings)))
    assert len(table) >= 90_000  # 100,000 readings less those missing_data skips
    configured = settings[kind]["rate"]
    measured = len(labelled(table, kind)) / len(table)
    assert abs(measured - configured) <= 0.1 * configured, (kind, measured)
    assert {r[4] for r in table} == {None, db.FAULT_CODES[kind]}  # nothing else is labelled


def test_rates_hold_together_each_row_one_label(tmp_path):
    settings = faults(duplicate={"rate": 0.04}, out_of_order={"rate": 0.05}, offline_burst={"rate": 0.08, "duration_seconds": 1})
    table = rows(simulate(tmp_path, settings, seconds=3_000))
    assert len(table) >= 30_000
    for kind, configured in (("duplicate", 0.04), ("out_of_order", 0.05), ("offline_burst", 0.08)):
        measured = len(labelled(table, kind)) / len(table)
        assert abs(measured - configured) <= 0.1 * configured, (kind, measured)


def test_clock_skew_rate_over_sensors_and_rows():
    settings = faults(clock_skew={"rate": 0.3, "max_offset_seconds": 60, "max_drift_ppm": 100})
    table, total, skewed = MetricTable(NormalParameters()), 0, 0
    profile = AnomalyProfile(0.0, (), (), (), (), "skip")
    for seed in range(3_000):
        stream = ReadingStream(timezone="UTC", table=table, profile=profile, readings_per_second=1.0, seed=seed,
                               first_seq=1, start_ms=1_767_225_600_000, faults=settings)
        block = stream.next_block(4)
        total += len(block)
        skew = clock_skew(settings, seed)
        true_ms = 1_767_225_600_000 + 1000 * np.arange(4)
        if skew is None:
            assert (block.ts_ms == true_ms).all() and block.fault is None
        else:  # off by the offset plus the drift since the stream started, both within their bounds
            assert abs(skew.offset_ms) <= 60_000 and abs(skew.drift) <= 100e-6
            assert (block.ts_ms == true_ms + np.rint(skew.offset_ms + skew.drift * (true_ms - true_ms[0]))).all()
            assert (block.fault == db.FAULT_CODES["clock_skew"]).all()
            skewed += len(block)
    assert total >= 10_000
    assert abs(skewed / total - 0.3) <= 0.03


def test_a_duplicate_repeats_an_earlier_row_under_a_new_seq(tmp_path):
    table = rows(simulate(tmp_path, faults(duplicate={"rate": 0.05}, out_of_order={"rate": 0.02}), seconds=2_000))
    by_seq = {r[0]: r for r in table}
    duplicates = labelled(table, "duplicate")
    assert duplicates
    for seq, ts_ms, temperature, voltage, _, original in duplicates:
        assert original is not None and original < seq
        assert by_seq[original][1:4] == (ts_ms, temperature, voltage)
    assert all(r[5] is None for r in table if r[4] != db.FAULT_CODES["duplicate"])


def test_an_out_of_order_row_comes_after_a_later_measurement(tmp_path):
    table = rows(simulate(tmp_path, faults(out_of_order={"rate": 0.05, "max_delay_seconds": 3}), seconds=2_000))
    newest, late = 0, 0
    for _, ts_ms, _, _, fault, _ in table:
        if fault == db.FAULT_CODES["out_of_order"]:
            late += 1
            assert ts_ms < newest  # written after a reading measured later
            assert newest - ts_ms <= 3_000 + 100  # and no later than max_delay_seconds (plus one period)
        newest = max(newest, ts_ms)
    assert late > 0
    clean = [r[1] for r in table if r[4] is None]
    assert clean == sorted(clean)  # clean rows stay in order


def test_an_offline_burst_is_silence_then_its_readings_at_once(tmp_path):
    table = rows(simulate(tmp_path, faults(offline_burst={"rate": 0.1, "duration_seconds": 3}), seconds=2_000))
    code = db.FAULT_CODES["offline_burst"]
    bursts, current = [], []
    for row in table:
        if row[4] == code:
            current.append(row)
        elif current:
            bursts.append(current)
            current = []
    assert len(bursts) > 10
    clean_ts = np.array([r[1] for r in table if r[4] is None])
    for burst in bursts[:-1]:
        times = [r[1] for r in burst]
        assert times == sorted(times) and len(burst) <= 30  # in order, at most duration × rate readings
        # silent meanwhile: no clean reading was measured within the burst's span
        assert not ((clean_ts >= times[0]) & (clean_ts <= times[-1])).any()


def test_faults_off_leave_every_label_null(tmp_path):
    for settings in (FaultSettings(), faults()):  # off, and on with every rate 0
        table = rows(simulate(tmp_path / str(settings.enabled), settings, seconds=1_000))
        assert len(table) >= 9_000
        assert all(r[4] is None and r[5] is None for r in table)


def test_faults_are_seeded(tmp_path):
    settings = faults(duplicate={"rate": 0.05}, out_of_order={"rate": 0.05}, offline_burst={"rate": 0.05})
    first = rows(simulate(tmp_path / "a", settings, seconds=1_000))
    assert rows(simulate(tmp_path / "b", settings, seconds=1_000)) == first
    assert rows(simulate(tmp_path / "c", settings.model_copy(update={"seed": 1}), seconds=1_000)) != first


def test_an_offline_burst_is_committed_in_commit_max_rows_pieces(tmp_path):
    path = simulate(tmp_path, faults(duplicate={"rate": 0.2}, offline_burst={"rate": 0.3, "duration_seconds": 20}),
                    seconds=1_000, max_rows=50)
    table = rows(path)
    assert [r[0] for r in table] == list(range(1, len(table) + 1))  # seq stays gap-free
    by_seq = {r[0]: r for r in table}
    assert all(by_seq[r[5]][1] == r[1] for r in labelled(table, "duplicate"))
    assert '"reserved_seq"' in (path.parent / "seq.hwm").read_text()


def test_split_never_parts_a_duplicate_from_its_original():
    n = 10
    block = Block(np.arange(n, dtype=np.int64), np.zeros(n, dtype=np.int32), np.zeros((n, 5)), np.zeros(n, dtype=np.int64),
                  3, 9, np.array([0, 0, 0, 1, 0, 0, 1, 0, 0, 0], dtype=np.uint8),
                  np.array([-1, -1, -1, 2, -1, -1, 5, -1, -1, -1]))
    parts = block.split(3)
    assert [len(p) for p in parts] == [4, 3, 3]
    assert [p.skipped for p in parts] == [3, 0, 0]
    assert parts[0].duplicate_of.tolist() == [-1, -1, -1, 2]
    assert parts[1].duplicate_of.tolist() == [-1, -1, 1]
    assert np.concatenate([p.ts_ms for p in parts]).tolist() == list(range(n))


def test_a_version_1_db_is_upgraded_in_place_and_labelled_from_then_on(tmp_path):
    spec = make_spec(tmp_path)
    path = simulate(tmp_path, FaultSettings(), seconds=100)
    before = rows(path)
    v1_view = "\n".join(line for line in db.VIEW_SQL.splitlines() if "fault" not in line and "duplicate_of" not in line)
    with sqlite3.connect(path) as conn:  # what schema version 1 wrote
        conn.executescript("DROP VIEW sensor_readings; ALTER TABLE readings DROP COLUMN fault;"
                           "ALTER TABLE readings DROP COLUMN duplicate_of;"
                           + v1_view.replace("r.seq AS seq,", "r.seq AS seq") + "PRAGMA user_version = 1;")
    run_simulation([spec], replace(make_options(rate=10, backfill=200, duration=0.001),
                                   faults=faults(duplicate={"rate": 0.2})), wall_clock=FixedClock(NOW + 200))
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
        labels = conn.execute("SELECT fault, count(*) FROM sensor_readings WHERE seq > ? GROUP BY 1",
                              (len(before),)).fetchall()
    after = rows(path)
    assert after[:len(before)] == before  # old rows unchanged, labels null
    assert ("duplicate", ) in [(label,) for label, _ in labels]


def test_fault_rates_that_leave_no_clean_rows_are_refused():
    with pytest.raises(ValueError, match="keep it at most 0.9"):
        faults(duplicate={"rate": 0.5}, out_of_order={"rate": 0.3}, offline_burst={"rate": 0.2})


def test_writer_stores_no_labels_for_a_block_without_faults(tmp_path):
    writer = SensorWriter(tmp_path / "Berlin" / "AB12", make_spec(tmp_path).identity)
    writer.open()
    assert writer.write(Block(np.array([1, 2], dtype=np.int64), np.zeros(2, dtype=np.int32), np.ones((2, 5)),
                              np.zeros(2, dtype=np.int64), 0, 2))
    writer.close()
    with sqlite3.connect(writer.path) as conn:
        assert conn.execute("SELECT fault, duplicate_of FROM readings").fetchall() == [(None, None), (None, None)]


def test_new_fault_settings_apply_at_the_next_block_and_lose_no_held_reading():
    profile = AnomalyProfile(0.0, (), (), (), (), "skip")
    stream = ReadingStream(timezone="UTC", table=MetricTable(NormalParameters()), profile=profile,
                           readings_per_second=1.0, seed=5, first_seq=1, start_ms=0,
                           faults=faults(offline_burst={"rate": 0.5, "duration_seconds": 50}))
    assert stream.faults is not None
    written = [stream.next_block(10)]
    while not stream.faults.holding:
        written.append(stream.next_block(10))
    stream.configure_faults(FaultSettings())  # a reload turns faults off while readings are held
    for _ in range(10):
        written.append(stream.next_block(10))
    times = np.concatenate([b.ts_ms for b in written])
    assert sorted(times.tolist()) == [1000 * k for k in range(stream.scheduled)]  # every reading once
    assert stream.faults is None and written[-1].fault is None  # drained, then back on the plain path
