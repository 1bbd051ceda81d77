"""The sink contract suite (STYLE §6), run against every sink in SINK_FACTORIES."""
from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc

from uploader.schema import CANONICAL_SCHEMA
from uploader.sinks.base import Delivered, Rejected, Retry


def test_deliver_a_batch_and_read_it_back(sink_under_test, batch_of, app_id):
    outcome = sink_under_test.sink.write(batch_of(0, 100))
    assert outcome == Delivered({app_id: 100}, rows=100)
    table = sink_under_test.read_back()
    assert sorted(table["seq"].to_pylist()) == list(range(1, 101))
    assert table.schema.names == CANONICAL_SCHEMA.names
    assert sink_under_test.sink.resume_from(app_id) == 100


def test_replaying_a_delivered_batch_writes_no_duplicates(sink_under_test, batch_of, app_id):
    sink = sink_under_test.sink
    assert isinstance(sink.write(batch_of(0, 50)), Delivered)
    replay = sink.write(batch_of(0, 50))
    assert replay == Delivered({app_id: 50}, rows=0)
    overlapping = sink.write(batch_of(20, 80))  # a stale cache asks again from the middle
    assert overlapping == Delivered({app_id: 50}, rows=0)
    assert sink.write(batch_of(50, 80)) == Delivered({app_id: 80}, rows=30)
    assert pc.count_distinct(sink_under_test.read_back()["seq"]).as_py() == sink_under_test.read_back().num_rows == 80


def test_a_stopped_backend_gives_retry_and_recovery_loses_nothing(sink_under_test, batch_of, app_id):
    sink = sink_under_test.sink
    assert isinstance(sink.write(batch_of(0, 10)), Delivered)
    sink_under_test.stop_backend()
    outcome = sink.write(batch_of(10, 20))
    assert isinstance(outcome, Retry) and outcome.reason
    sink_under_test.start_backend()
    assert sink.write(batch_of(10, 20)) == Delivered({app_id: 20}, rows=10)
    assert sorted(sink_under_test.read_back()["seq"].to_pylist()) == list(range(1, 21))


def test_a_bad_row_is_rejected_with_a_reason(sink_under_test, batch_of, app_id):
    good = batch_of(0, 5).parts[0].chunks([])
    [rows] = list(good)
    broken = rows.set_column(rows.schema.get_field_index("seq"), CANONICAL_SCHEMA.field("seq"),
                             pa.array([1, 2, None, 4, 5], pa.int64()))
    outcome = sink_under_test.sink.write(batch_of(0, 5, rows=[broken]))
    assert isinstance(outcome, Rejected) and outcome.reason
    assert sink_under_test.sink.resume_from(app_id) == 0


def test_a_batch_of_several_sources_is_delivered_with_a_position_for_each(sink_under_test, batch_across, app_id_of):
    sink = sink_under_test.sink
    outcome = sink.write(batch_across({0: (0, 30), 1: (0, 10), 2: (0, 20)}))
    assert outcome == Delivered({app_id_of(0): 30, app_id_of(1): 10, app_id_of(2): 20}, rows=60)
    assert [sink.resume_from(app_id_of(n)) for n in range(3)] == [30, 10, 20]
    table = sink_under_test.read_back()
    assert sorted(Counter(table["source"].to_pylist()).values()) == [10, 20, 30]


def test_a_multi_source_replay_writes_only_the_parts_not_yet_held(sink_under_test, batch_across, batch_of, app_id_of):
    sink = sink_under_test.sink
    assert sink.write(batch_of(0, 40, source=0)) == Delivered({app_id_of(0): 40}, rows=40)
    outcome = sink.write(batch_across({0: (0, 40), 1: (0, 15)}))  # a stale cache replays source 0
    assert outcome == Delivered({app_id_of(0): 40, app_id_of(1): 15}, rows=15)
    table = sink_under_test.read_back()
    assert table.num_rows == 55 and pc.count_distinct(pc.binary_join_element_wise(
        table["source"], pc.cast(table["seq"], pa.string()), "#")).as_py() == 55


def test_a_bad_row_in_one_part_refuses_the_whole_batch(sink_under_test, batch_across, batch_of, app_id_of):
    [rows] = list(batch_of(0, 5, source=1).parts[0].chunks([]))
    broken = rows.set_column(rows.schema.get_field_index("seq"), CANONICAL_SCHEMA.field("seq"),
                             pa.array([1, 2, None, 4, 5], pa.int64()))
    outcome = sink_under_test.sink.write(batch_across({0: (0, 10), 1: (0, 5, [broken])}))
    assert isinstance(outcome, Rejected) and outcome.reason
    assert [sink_under_test.sink.resume_from(app_id_of(n)) for n in range(2)] == [0, 0]  # all or nothing


def test_check_passes_on_a_good_config_and_fails_clearly_on_a_bad_one(sink_under_test):
    good = sink_under_test.sink.check()
    assert good.ok, good.message
    bad = sink_under_test.misconfigured().check()
    assert not bad.ok and bad.message.startswith(f"{sink_under_test.sink.name}: ")


def _other_project_batch(upto: int):
    from tests.uploader.sinks.conftest import canonical_rows
    from uploader.batch import Batch, Lineage, Part

    lineage = Lineage("other", 1, "New_York/ZZ99/sensor_data.db", "gen-9", "new-york", "New_York")
    rows = [canonical_rows(1, upto, sensor_id="New_York_ZZ99", lineage=lineage)]
    app_id = "sensor-manager/other/epoch-1/ship-0/New_York/ZZ99/sensor_data.db@gen-9"
    return Batch([Part(app_id, 0, upto, lineage, lambda rejected: iter(rows))])


def test_clean_removes_this_projects_rows_and_nothing_else_and_mark_shipped_holds(sink_under_test, batch_of, app_id):
    sink = sink_under_test.sink
    assert isinstance(sink.write(batch_of(0, 30)), Delivered)
    assert isinstance(sink.write(_other_project_batch(7)), Delivered)
    assert sink.count_project("test") == 30 and sink.count_project("test", fleet_epoch=2) == 0
    sink.mark_shipped({app_id: 40})  # after a clean the history (up to the DB's end) is not shipped again
    assert sink.delete_project("test") == 30
    remaining = sink_under_test.read_back()
    assert remaining["project"].to_pylist() == ["other"] * 7
    assert sink.count_project("test") == 0 and sink.count_project("other") == 7
    assert sink.resume_from(app_id) == 40
    assert sink.write(batch_of(40, 45)) == Delivered({app_id: 45}, rows=5)
