"""The writer never loses a DB, never reuses a seq, and refuses a second writer."""
from __future__ import annotations

import json
import os
import sqlite3
import threading

import pytest

from fleetcore.errors import WriterLockedError
from sensor_manager.simulator.db import open_readonly, read_high_water
from sensor_manager.simulator.runner import run_simulation
from sensor_manager.simulator.writer import SensorWriter

from .conftest import FixedClock, make_identity, make_options, make_spec
from .test_db import _block


def _seqs(path) -> list[int]:
    return [r[0] for r in open_readonly(path).execute("SELECT seq FROM sensor_readings ORDER BY id")]


def _write(writer: SensorWriter, start_ms: int, n: int) -> None:
    assert writer.write(_block(list(range(start_ms, start_ms + n * 1000, 1000))))


def test_seq_continues_across_restart_without_gap(tmp_path):
    identity = make_identity()
    writer = SensorWriter(tmp_path / "s", identity)
    writer.open()
    _write(writer, 1_735_689_600_000, 5)
    generation = writer.generation
    writer.close()
    again = SensorWriter(tmp_path / "s", identity)
    again.open()
    assert again.generation == generation and again.next_seq == 6
    _write(again, 1_735_689_700_000, 3)
    again.close()
    assert _seqs(again.path) == list(range(1, 9))


def test_corrupt_db_is_moved_aside_and_seq_continues(tmp_path):
    identity = make_identity()
    writer = SensorWriter(tmp_path / "s", identity)
    writer.open()
    _write(writer, 1_735_689_600_000, 50)
    old_generation = writer.generation
    writer.close()
    with open(writer.path, "r+b") as handle:  # wreck the header and the first pages
        handle.seek(0)
        handle.write(os.urandom(8192))
    again = SensorWriter(tmp_path / "s", identity)
    again.open()
    _write(again, 1_735_689_700_000, 2)
    again.close()
    aside = sorted(p.name for p in (tmp_path / "s").iterdir() if ".corrupt-" in p.name)
    assert len(aside) == 1 and aside[0].startswith("sensor_data.db.corrupt-")
    new_seqs = _seqs(again.path)
    assert again.generation != old_generation
    assert new_seqs[0] > 50 and new_seqs == sorted(set(new_seqs))


def test_deleted_db_does_not_reuse_seq(tmp_path):
    identity = make_identity()
    writer = SensorWriter(tmp_path / "s", identity)
    writer.open()
    _write(writer, 1_735_689_600_000, 10)
    writer.close()
    for name in ("sensor_data.db", "sensor_data.db-wal", "sensor_data.db-shm"):
        (tmp_path / "s" / name).unlink(missing_ok=True)
    again = SensorWriter(tmp_path / "s", identity)
    again.open()
    assert again.next_seq > 10
    again.close()


def test_second_writer_is_refused_naming_the_holder(tmp_path):
    identity = make_identity()
    first = SensorWriter(tmp_path / "s", identity)
    first.open()
    try:
        with pytest.raises(WriterLockedError, match=rf"pid {os.getpid()}"):
            SensorWriter(tmp_path / "s", identity).open()
    finally:
        first.close()
    second = SensorWriter(tmp_path / "s", identity)
    second.open()  # the lock died with the first writer
    second.close()


def test_a_db_of_another_sensor_is_refused(tmp_path):
    writer = SensorWriter(tmp_path / "s", make_identity("Berlin_AB12"))
    writer.open()
    writer.close()
    with pytest.raises(Exception, match="belongs to sensor Berlin_AB12"):
        SensorWriter(tmp_path / "s", make_identity("Berlin_ZZ99")).open()


def test_locked_db_is_retried_and_never_kills_the_sensor(tmp_path):
    spec = make_spec(tmp_path)
    writer = SensorWriter(spec.directory, spec.identity)
    writer.open()
    writer.close()
    blocker = sqlite3.connect(writer.path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock, as a misbehaving tool might
    release = threading.Timer(0.3, lambda: blocker.execute("ROLLBACK"))
    release.start()
    status = tmp_path / "status.json"
    options = make_options(rate=1.0, backfill=600, duration=0.1, status_file=status)
    summary = run_simulation([spec], options, wall_clock=FixedClock(1_735_689_600.0))
    release.join()
    assert summary.errors > 0
    assert summary.rows_written == read_high_water(writer.path).max_seq >= 500
    entry = json.loads(status.read_text())["sensors"][spec.identity.sensor_id]
    assert entry["rows_written"] == summary.rows_written and entry["errors"] == summary.errors


def test_identity_change_keeps_old_rows_as_they_were(tmp_path):
    from dataclasses import replace

    identity = make_identity(firmware_version="1.4.0")
    writer = SensorWriter(tmp_path / "s", identity)
    writer.open()
    _write(writer, 1_735_689_600_000, 2)
    writer.close()
    upgraded = SensorWriter(tmp_path / "s", replace(identity, firmware_version="2.0.1"))
    upgraded.open()
    _write(upgraded, 1_735_689_700_000, 2)
    upgraded.close()
    firmware = [r[0] for r in open_readonly(upgraded.path).execute("SELECT firmware_version FROM sensor_readings ORDER BY id")]
    assert firmware == ["1.4.0", "1.4.0", "2.0.1", "2.0.1"]


def test_a_foreign_database_is_refused_not_deleted(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    seed_db = sqlite3.connect(folder / "sensor_data.db")
    seed_db.execute("CREATE TABLE sensor_readings (id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp TEXT)")
    seed_db.execute("INSERT INTO sensor_readings (timestamp) VALUES ('2025-01-01T00:00:00.000+00:00')")
    seed_db.commit()
    seed_db.close()
    with pytest.raises(Exception, match="not a sensor-manager v2 database"):
        SensorWriter(folder, make_identity()).open()
    assert sqlite3.connect(folder / "sensor_data.db").execute("SELECT count(*) FROM sensor_readings").fetchone()[0] == 1


def test_a_db_records_its_fleet_epoch_and_refuses_another(tmp_path):
    from fleetcore.edge_db import FleetEpochMismatchError, read_fleet_epoch

    identity = make_identity()
    writer = SensorWriter(tmp_path / "s", identity)  # outside a plan: records nothing
    writer.open()
    _write(writer, 1_735_689_600_000, 2)
    writer.close()
    assert read_fleet_epoch(open_readonly(writer.path)) is None
    stamped = SensorWriter(tmp_path / "s", identity, fleet_epoch=3)  # an older DB gains the plan's epoch
    stamped.open()
    stamped.close()
    assert read_fleet_epoch(open_readonly(writer.path)) == 3
    with pytest.raises(FleetEpochMismatchError, match="belong to fleet_epoch 3 but the plan says 1"):
        SensorWriter(tmp_path / "s", identity, fleet_epoch=1).open()
    assert _seqs(writer.path) == [1, 2]
