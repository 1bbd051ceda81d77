"""The sink contract suite (STYLE §6), run against every sink in SINK_FACTORIES."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from uploader.schema import CANONICAL_SCHEMA
from uploader.sinks.base import Delivered, Rejected, Retry


def test_deliver_a_batch_and_read_it_back(sink_under_test, batch_of):
    outcome = sink_under_test.sink.write(batch_of(0, 100))
    assert outcome == Delivered(position=100, rows=100)
    table = sink_under_test.read_back()
    assert sorted(table["seq"].to_pylist()) == list(range(1, 101))
    assert table.schema.names == CANONICAL_SCHEMA.names
    assert sink_under_test.sink.resume_from(batch_of(0, 1).app_id) == 100


def test_replaying_a_delivered_batch_writes_no_duplicates(sink_under_test, batch_of):
    sink = sink_under_test.sink
    assert isinstance(sink.write(batch_of(0, 50)), Delivered)
    replay = sink.write(batch_of(0, 50))
    assert replay == Delivered(position=50, rows=0)
    overlapping = sink.write(batch_of(20, 80))  # a stale cache asks again from the middle
    assert overlapping == Delivered(position=50, rows=0)
    assert sink.write(batch_of(50, 80)) == Delivered(position=80, rows=30)
    assert pc.count_distinct(sink_under_test.read_back()["seq"]).as_py() == sink_under_test.read_back().num_rows == 80


def test_a_stopped_backend_gives_retry_and_recovery_loses_nothing(sink_under_test, batch_of):
    sink = sink_under_test.sink
    assert isinstance(sink.write(batch_of(0, 10)), Delivered)
    sink_under_test.stop_backend()
    outcome = sink.write(batch_of(10, 20))
    assert isinstance(outcome, Retry) and outcome.reason
    sink_under_test.start_backend()
    assert sink.write(batch_of(10, 20)) == Delivered(position=20, rows=10)
    assert sorted(sink_under_test.read_back()["seq"].to_pylist()) == list(range(1, 21))


def test_a_bad_row_is_rejected_with_a_reason(sink_under_test, batch_of):
    good = batch_of(0, 5).chunks([])
    [rows] = list(good)
    broken = rows.set_column(rows.schema.get_field_index("seq"), CANONICAL_SCHEMA.field("seq"),
                             pa.array([1, 2, None, 4, 5], pa.int64()))
    outcome = sink_under_test.sink.write(batch_of(0, 5, rows=[broken]))
    assert isinstance(outcome, Rejected) and outcome.reason
    assert sink_under_test.sink.resume_from(batch_of(0, 1).app_id) == 0


def test_check_passes_on_a_good_config_and_fails_clearly_on_a_bad_one(sink_under_test):
    good = sink_under_test.sink.check()
    assert good.ok, good.message
    bad = sink_under_test.misconfigured().check()
    assert not bad.ok and bad.message.startswith(f"{sink_under_test.sink.name}: ")
