"""The pipeline end to end, in process: drain, resume, replace, corrupt, dead letters, status."""
from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc

from uploader.checkpoints import CheckpointStore, checkpoint_path
from uploader.deadletter import DeadLetterStore
from uploader.pipeline import Uploader
from uploader.sinks.base import Rejected


def run_once(invocation) -> tuple[bool, Uploader]:
    uploader = Uploader(invocation)
    try:
        return uploader.run_once(), uploader
    finally:
        uploader.close()


def keys(table) -> Counter:
    return Counter(zip(table["sensor_id"].to_pylist(), table["fleet_epoch"].to_pylist(), table["seq"].to_pylist(), strict=True))


def test_once_drains_every_db_of_every_city_and_a_rerun_ships_nothing(project, sensor_db, invocation, lake_rows):
    dbs = [sensor_db(project / "data" / city / code / "sensor_data.db", sensor_id=f"{city}_{code}", location=city.replace("_", " "))
           for city, code in [("New_York", "AB12"), ("New_York", "CD34"), ("Berlin", "EF56")]]
    for index, db in enumerate(dbs):
        db.append(300 + index)
    inv = invocation()
    ok, uploader = run_once(inv)
    assert ok
    table = lake_rows(inv.table_uri)
    assert table.num_rows == 903
    assert max(keys(table).values()) == 1
    assert sorted(pc.unique(table["city"]).to_pylist()) == ["Berlin", "New York"]
    assert set(table["project"].to_pylist()) == {"test"} and set(table["stage"].to_pylist()) == {"raw"}

    ok, uploader = run_once(inv)
    assert ok and uploader.sink_status["delta"].rows_shipped == 0
    assert lake_rows(inv.table_uri).num_rows == 903


def test_status_file_has_the_contract_shape(project, sensor_db, invocation):
    db = sensor_db(project / "data" / "New_York" / "AB12" / "sensor_data.db")
    db.append(10)
    inv = invocation(sqlite=project / "data" / "New_York")
    run_once(inv)
    status = json.loads((project / "state" / "status" / "uploader-new-york.json").read_text())
    assert status["role"] == "uploader" and status["uploader_id"] == "new-york" and status["state"] == "stopped"
    assert set(status["sinks"]["delta"]) >= {"rows_shipped", "lag_rows", "lag_seconds", "last_success", "last_error",
                                            "retries", "dead_lettered", "failing_permanently"}
    assert status["sinks"]["delta"]["rows_shipped"] == 10 and status["sinks"]["delta"]["lag_rows"] == 0
    [source] = status["sources"]
    assert source == {**source, "source": "New_York/AB12/sensor_data.db", "generation": db.generation,
                      "sensor_id": "New_York_AB12", "end_id": 10, "positions": {"delta": 10}, "locked": True}


def test_new_rows_after_a_run_ship_next_run_exactly_once(project, sensor_db, invocation, lake_rows):
    db = sensor_db(project / "data" / "New_York" / "AB12" / "sensor_data.db")
    db.append(100)
    inv = invocation()
    run_once(inv)
    db.append(50)
    ok, _ = run_once(inv)
    table = lake_rows(inv.table_uri)
    assert ok and table.num_rows == 150 and max(keys(table).values()) == 1


def test_small_batches_drain_everything_without_a_row_cap(project, sensor_db, invocation, lake_rows):
    db = sensor_db(project / "data" / "New_York" / "AB12" / "sensor_data.db")
    db.append(2_500)
    inv = invocation()
    inv.settings.sinks.delta.batch_size = 1_000
    ok, _ = run_once(inv)
    assert ok and lake_rows(inv.table_uri).num_rows == 2_500


def test_lost_or_stale_local_checkpoint_defers_to_the_table(project, sensor_db, invocation, lake_rows):
    db = sensor_db(project / "data" / "New_York" / "AB12" / "sensor_data.db")
    db.append(100)
    inv = invocation()
    run_once(inv)
    store = checkpoint_path(inv.state_root, inv.uploader_id)
    with sqlite3.connect(store) as con:
        con.execute("UPDATE checkpoints SET position = 10")
    db.append(20)
    ok, _ = run_once(inv)
    assert ok and lake_rows(inv.table_uri).num_rows == 120
    store.unlink()
    ok, _ = run_once(inv)
    assert ok and lake_rows(inv.table_uri).num_rows == 120


def test_corrupt_checkpoint_store_is_moved_aside_and_rebuilt(project, sensor_db, invocation, lake_rows):
    db = sensor_db(project / "data" / "New_York" / "AB12" / "sensor_data.db")
    db.append(40)
    inv = invocation()
    run_once(inv)
    store = checkpoint_path(inv.state_root, inv.uploader_id)
    for side in ("-wal", "-shm"):
        Path(f"{store}{side}").unlink(missing_ok=True)
    store.write_bytes(b"this is not a sqlite database" * 100)
    db.append(5)
    ok, uploader = run_once(inv)
    assert ok and uploader.store.rebuilt_from is not None and uploader.store.rebuilt_from.exists()
    assert lake_rows(inv.table_uri).num_rows == 45
    assert CheckpointStore(store).get("delta", next(iter(CheckpointStore(store).all()))[1]) == 45


def test_corrupt_db_among_good_ones_is_reported_and_the_others_flow(project, sensor_db, invocation, lake_rows):
    good = sensor_db(project / "data" / "New_York" / "AB12" / "sensor_data.db")
    good.append(30)
    bad = project / "data" / "New_York" / "ZZ99" / "sensor_data.db"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"garbage, not a database " * 200)
    inv = invocation()
    ok, uploader = run_once(inv)
    assert not ok  # the run did not drain everything it was pointed at
    assert lake_rows(inv.table_uri).num_rows == 30
    status = json.loads(inv.status_path.read_text())
    [broken] = [s for s in status["sources"] if s["source"] == "New_York/ZZ99/sensor_data.db"]
    assert "not a database" in broken["error"]


def test_a_db_without_readings_yet_is_skipped_not_failed(project, sensor_db, invocation):
    sensor_db(project / "data" / "New_York" / "AB12" / "sensor_data.db", shape="current")  # no rows, no generation yet
    ok, uploader = run_once(invocation())
    assert ok
    assert "not ready" in next(iter(uploader.others.values())).skipped


def test_rows_that_cannot_be_canonical_are_dead_lettered_with_reasons(project, sensor_db, invocation, lake_rows):
    db = sensor_db(project / "data" / "New_York" / "AB12" / "sensor_data.db")
    db.append(10)
    db.append(1, timestamp="not a time")
    db.append(1, temperature="warm")
    db.append(1, sensor_id="")
    db.append(7)
    inv = invocation()
    ok, uploader = run_once(inv)
    table = lake_rows(inv.table_uri)
    assert ok and table.num_rows == 17
    assert sorted(table["source_id"].to_pylist()) == [*range(1, 11), *range(14, 21)]
    dead = DeadLetterStore(inv.state_root / "deadletter").read("delta").sort_by("source_id")
    assert dead["source_id"].to_pylist() == [11, 12, 13]
    assert dead["reason"].to_pylist() == ["unparseable timestamp", "non-numeric temperature", "missing sensor_id"]
    assert json.loads(dead["row_json"][1].as_py())["temperature"] == "warm"
    assert uploader.sink_status["delta"].dead_lettered == 3
    ok, uploader = run_once(inv)  # a rerun neither re-ships nor re-dead-letters
    assert DeadLetterStore(inv.state_root / "deadletter").count("delta") == 3


def test_missing_metric_stays_null_never_zero(project, sensor_db, invocation, lake_rows):
    db = sensor_db(project / "data" / "New_York" / "AB12" / "sensor_data.db")
    db.append(3, humidity=None)
    inv = invocation()
    run_once(inv)
    assert lake_rows(inv.table_uri)["humidity"].null_count == 3


def test_replaced_db_is_a_new_source_and_both_generations_arrive_once(project, sensor_db, invocation, lake_rows):
    path = project / "data" / "New_York" / "AB12" / "sensor_data.db"
    first = sensor_db(path)
    first.append(50)
    uploader = Uploader(invocation(continuous=True))
    try:
        uploader.cycle(fixed_targets=False)
        first.append(25)  # written after the last read, before the file is replaced
        for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            name.unlink(missing_ok=True)  # the sensor starts a new DB; the uploader still holds the old one open
        second = sensor_db(path)
        second.seq = first.seq  # ours: seq continues across generations (seq.hwm)
        second.append(40)
        uploader.cycle(fixed_targets=False)
        uploader.cycle(fixed_targets=False)
    finally:
        uploader.close()
    table = lake_rows(uploader.inv.table_uri)
    generations = Counter(table["generation"].to_pylist())
    assert generations == {first.generation: 75, second.generation: 40}
    assert max(keys(table).values()) == 1


def test_development_mode_reships_under_a_new_epoch(project, sensor_db, invocation, lake_rows):
    db = sensor_db(project / "data" / "New_York" / "AB12" / "sensor_data.db")
    db.append(20)
    run_once(invocation())
    ok, uploader = run_once(invocation(development=True))
    table = lake_rows(uploader.inv.table_uri)
    assert ok and table.num_rows == 40
    assert sorted(Counter(table["fleet_epoch"].to_pylist()).values()) == [20, 20]
    assert max(keys(table).values()) == 1


def test_a_source_that_breaks_the_stage_is_reported_and_the_others_flow(project, sensor_db, invocation, lake_rows, monkeypatch):
    from uploader.stages.raw import RawStage

    for code in ("AA11", "BB22"):
        sensor_db(project / "data" / "Berlin" / code / "sensor_data.db", sensor_id=f"Berlin_{code}").append(20)
    original = RawStage.apply

    def poisoned(self, chunk, lineage):
        if "BB22" in lineage.source:
            raise ValueError("stage bug")
        return original(self, chunk, lineage)

    monkeypatch.setattr(RawStage, "apply", poisoned)
    ok, uploader = run_once(invocation())
    assert not ok
    table = lake_rows(uploader.inv.table_uri)
    assert set(table["sensor_id"].to_pylist()) == {"Berlin_AA11"} and table.num_rows == 20
    status = json.loads(uploader.inv.status_path.read_text())
    [broken] = [s for s in status["sources"] if "BB22" in s["source"]]
    assert broken["error"] == "unexpected ValueError: stage bug" and broken["positions"] == {"delta": 0}
    assert status["sinks"]["delta"]["retries"] == 0


def test_continuous_mode_waits_for_a_data_folder_that_does_not_exist_yet(project, sensor_db, invocation, lake_rows):
    city = project / "data" / "Tokyo"
    uploader = Uploader(invocation(sqlite=city, continuous=True))
    try:
        uploader.cycle(fixed_targets=False)
        assert not uploader.tracked
        sensor_db(city / "AB12" / "sensor_data.db", sensor_id="Tokyo_AB12", location="Tokyo").append(7)
        uploader.cycle(fixed_targets=False)
    finally:
        uploader.close()
    assert uploader.inv.uploader_id == "tokyo"
    assert lake_rows(uploader.inv.table_uri).num_rows == 7


def test_a_db_whose_table_is_recreated_in_place_ships_as_a_new_generation(project, sensor_db, invocation, lake_rows):
    from contextlib import closing

    from uploader.sources.generations import DDL

    db = sensor_db(project / "data" / "Berlin" / "AA11" / "sensor_data.db", shape="current")
    db.append(10)
    uploader = Uploader(invocation(continuous=True))
    try:
        uploader.cycle(fixed_targets=False)
        with closing(db.connect()) as con, con:
            con.executescript("DROP TABLE sensor_readings; DELETE FROM sqlite_sequence;" + DDL["current"].split(";")[0])
        db.seq = 100  # another first row, so another generation hash
        db.append(5)
        uploader.cycle(fixed_targets=False)
    finally:
        uploader.close()
    table = lake_rows(uploader.inv.table_uri)
    assert sorted(Counter(table["generation"].to_pylist()).values()) == [5, 10]
    assert sorted(table["source_id"].to_pylist()) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 7, 8, 9, 10]


def _writes(table_uri) -> list[dict]:
    from deltalake import DeltaTable

    return [c for c in DeltaTable(str(table_uri)).history() if c.get("operation") == "WRITE"]


def test_one_continuous_cycle_over_many_sources_is_one_delta_commit(project, sensor_db, invocation, lake_rows):
    from deltalake import DeltaTable

    dbs = [sensor_db(project / "data" / "Berlin" / f"S{n:03d}" / "sensor_data.db", sensor_id=f"Berlin_S{n:03d}")
           for n in range(5)]
    for db in dbs:
        db.append(60)
    uploader = Uploader(invocation(continuous=True))
    try:
        uploader.cycle(fixed_targets=False)
        table = DeltaTable(uploader.inv.table_uri)
        after_first = table.version()
        assert len(_writes(uploader.inv.table_uri)) == 1
        for db in dbs:
            db.append(15)  # one interval's new rows of every sensor
        uploader.cycle(fixed_targets=False)
        table.update_incremental()
        assert table.version() == after_first + 1  # one commit for the five sources
        uploader.cycle(fixed_targets=False)  # nothing new: no commit at all
        table.update_incremental()
        assert table.version() == after_first + 1
        apps = {uploader.namespace.app_id(t.source.key) for t in uploader.tracked.values()}
    finally:
        uploader.close()
    assert len(apps) == 5 and {table.transaction_version(app) for app in apps} == {75}
    [last] = _writes(uploader.inv.table_uri)[:1]  # history is newest first
    assert last["operationMetrics"]["num_added_rows"] == 75
    rows = lake_rows(uploader.inv.table_uri)
    assert rows.num_rows == 375 and max(keys(rows).values()) == 1


def test_a_backlog_drains_in_commits_of_at_most_batch_size_rows(project, sensor_db, invocation, lake_rows):
    sensor_db(project / "data" / "Berlin" / "BIG1" / "sensor_data.db", sensor_id="Berlin_BIG1").append(2_500)
    for code in ("AA11", "BB22"):
        sensor_db(project / "data" / "Berlin" / code / "sensor_data.db", sensor_id=f"Berlin_{code}").append(300)
    inv = invocation()
    inv.settings.sinks.delta.batch_size = 1_000
    ok, _ = run_once(inv)
    added = [c["operationMetrics"]["num_added_rows"] for c in _writes(inv.table_uri)]
    assert ok and sum(added) == 3_100 and max(added) <= 1_000 and len(added) == 4
    table = lake_rows(inv.table_uri)
    assert table.num_rows == 3_100 and max(keys(table).values()) == 1


def test_a_lake_deleted_under_a_running_uploader_is_back_filled_from_the_first_row(project, sensor_db, invocation, lake_rows):
    import shutil

    dbs = [sensor_db(project / "data" / "Berlin" / code / "sensor_data.db", sensor_id=f"Berlin_{code}") for code in ("AA11", "BB22")]
    for db in dbs:
        db.append(36)
    inv = invocation(continuous=True)
    inv.settings.sinks.delta.retry.initial_seconds = 0.01
    uploader = Uploader(inv)
    try:
        uploader.cycle(fixed_targets=False)
        shutil.rmtree(project / "lake")
        for db in dbs:
            db.append(20)
        for _ in range(4):  # the cycle that notices the loss (a retry at most), the back-fill, a quiet one
            while uploader.backoffs["delta"].is_waiting():
                time.sleep(0.01)
            uploader.cycle(fixed_targets=False)
    finally:
        uploader.close()
    table = lake_rows(uploader.inv.table_uri)
    assert sorted(keys(table)) == [(f"Berlin_{code}", 1, seq) for code in ("AA11", "BB22") for seq in range(1, 57)]
    assert all(t.positions == {"delta": 56} for t in uploader.tracked.values())


def test_a_dead_lettered_range_is_recorded_in_the_table_and_never_re_read(project, sensor_db, invocation, lake_rows, monkeypatch):
    from uploader.sinks.delta import DeltaSink

    db = sensor_db(project / "data" / "Berlin" / "AA11" / "sensor_data.db", sensor_id="Berlin_AA11")
    db.append(10)
    inv = invocation(continuous=True)
    inv.settings.sinks.delta.batch_size = 10
    real_write, refused = DeltaSink.write, []

    def refuse_first_batch(sink, batch):
        if not refused and any(part.after == 0 for part in batch.parts):
            refused.append(batch)
            return Rejected("Invariant violated by the test")
        return real_write(sink, batch)

    monkeypatch.setattr(DeltaSink, "write", refuse_first_batch)
    uploader = Uploader(inv)
    try:
        uploader.cycle(fixed_targets=False)
        db.append(5)
        uploader.cycle(fixed_targets=False)
        uploader.cycle(fixed_targets=False)
    finally:
        uploader.close()
    assert sorted(lake_rows(inv.table_uri)["seq"].to_pylist()) == list(range(11, 16))
    assert DeadLetterStore(inv.state_root / "deadletter").count("delta") == 10
    ok, rerun = run_once(invocation())  # a new process resumes from the table: the refused rows stay settled
    assert ok and rerun.sink_status["delta"].rows_shipped == 0 and rerun.sink_status["delta"].dead_lettered == 0


def test_after_the_lake_is_replaced_a_running_uploader_ships_what_a_fresh_one_would(project, sensor_db, invocation, lake_rows):
    import shutil

    db = sensor_db(project / "data" / "Berlin" / "AA11" / "sensor_data.db", sensor_id="Berlin_AA11")
    db.append(30)
    inv = invocation(continuous=True)
    inv.settings.sinks.delta.retry.initial_seconds = 0.01
    uploader = Uploader(inv)
    try:
        uploader.cycle(fixed_targets=False)
        shutil.rmtree(project / "lake")
        sensor_db(project / "data" / "Berlin" / "BB22" / "sensor_data.db", sensor_id="Berlin_BB22").append(10)  # new: after 0
        db.append(5)
        for _ in range(4):
            while uploader.backoffs["delta"].is_waiting():
                time.sleep(0.01)
            uploader.cycle(fixed_targets=False)
    finally:
        uploader.close()
    ok, fresh = run_once(invocation())
    assert ok and fresh.sink_status["delta"].rows_shipped == 0
    table = lake_rows(inv.table_uri)
    assert sorted(keys(table)) == sorted([("Berlin_AA11", 1, s) for s in range(1, 36)] + [("Berlin_BB22", 1, s) for s in range(1, 11)])
