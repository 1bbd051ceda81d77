"""Delta-specific behaviour on top of the contract suite."""
from __future__ import annotations

import pytest
from deltalake import DeltaTable

from uploader.batch import Batch
from uploader.sinks.base import Delivered
from uploader.sinks.delta import DeltaSink
from uploader.sources.sqlite import SourceUnreadableError


def test_a_source_failing_mid_stream_is_raised_not_counted_against_the_sink(tmp_path, batch_of):
    sink = DeltaSink(tmp_path / "lake" / "sensor_readings")
    good = batch_of(0, 10)
    [rows] = list(good.chunks([]))

    def broken(rejected):
        yield rows
        raise SourceUnreadableError("db vanished")

    with pytest.raises(SourceUnreadableError, match="db vanished"):
        sink.write(Batch(good.app_id, 0, 20, good.lineage, broken))
    assert sink.resume_from(good.app_id) == 0  # nothing committed
    assert sink.write(batch_of(0, 10)) == Delivered(position=10, rows=10)


def test_every_commit_carries_the_app_transaction_and_lineage_metadata(tmp_path, batch_of):
    path = tmp_path / "lake" / "sensor_readings"
    sink = DeltaSink(path)
    sink.write(batch_of(0, 5))
    sink.write(batch_of(5, 9))
    table = DeltaTable(str(path))
    assert table.transaction_version(batch_of(0, 1).app_id) == 9
    commits = [c for c in table.history() if c.get("operation") == "WRITE"]
    assert len(commits) == 2
    assert table.metadata().partition_columns == ["city", "date"]


def test_an_all_rejected_batch_still_moves_the_tables_position(tmp_path, batch_of):
    sink = DeltaSink(tmp_path / "lake" / "sensor_readings")
    outcome = sink.write(batch_of(0, 7, rows=[]))
    assert outcome == Delivered(position=7, rows=0)
    assert sink.resume_from(batch_of(0, 1).app_id) == 7
