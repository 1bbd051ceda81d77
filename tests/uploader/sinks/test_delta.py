"""Delta-specific behaviour on top of the contract suite."""
from __future__ import annotations

import pytest
from deltalake import DeltaTable

from uploader.batch import Batch
from uploader.sinks.base import Delivered
from uploader.sinks.delta import DeltaSink
from uploader.sources.sqlite import SourceUnreadableError


def test_a_source_failing_mid_stream_is_raised_not_counted_against_the_sink(tmp_path, batch_of, app_id):
    sink = DeltaSink(tmp_path / "lake" / "sensor_readings")
    good = batch_of(0, 10)
    [rows] = list(good.parts[0].chunks([]))

    def broken(rejected):
        yield rows
        raise SourceUnreadableError("db vanished")

    with pytest.raises(SourceUnreadableError, match="db vanished"):
        sink.write(Batch.of(app_id, 0, 20, good.parts[0].lineage, broken))
    assert sink.resume_from(app_id) == 0  # nothing committed
    assert sink.write(batch_of(0, 10)) == Delivered({app_id: 10}, rows=10)


def test_every_commit_carries_the_app_transaction_and_lineage_metadata(tmp_path, batch_of, app_id):
    path = tmp_path / "lake" / "sensor_readings"
    sink = DeltaSink(path)
    sink.write(batch_of(0, 5))
    sink.write(batch_of(5, 9))
    table = DeltaTable(str(path))
    assert table.transaction_version(app_id) == 9
    commits = [c for c in table.history() if c.get("operation") == "WRITE"]
    assert len(commits) == 2
    assert table.metadata().partition_columns == ["city", "date"]


def test_an_all_rejected_batch_still_moves_the_tables_position(tmp_path, batch_of, app_id):
    sink = DeltaSink(tmp_path / "lake" / "sensor_readings")
    outcome = sink.write(batch_of(0, 7, rows=[]))
    assert outcome == Delivered({app_id: 7}, rows=0)
    assert sink.resume_from(app_id) == 7


def test_one_multi_source_batch_is_one_commit_with_an_app_transaction_per_source(tmp_path, batch_across, app_id_of):
    path = tmp_path / "lake" / "sensor_readings"
    sink = DeltaSink(path)
    sink.write(batch_across({n: (0, 10 + n) for n in range(5)}))
    table = DeltaTable(str(path))
    assert [c.get("operation") for c in table.history()] == ["WRITE", "CREATE TABLE"]
    assert [table.transaction_version(app_id_of(n)) for n in range(5)] == [10, 11, 12, 13, 14]


def test_a_source_failing_mid_stream_in_a_multi_source_batch_commits_no_part(tmp_path, batch_across, batch_of, app_id_of):
    sink = DeltaSink(tmp_path / "lake" / "sensor_readings")
    [rows] = list(batch_of(0, 10, source=1).parts[0].chunks([]))

    def broken(rejected):
        yield rows
        raise SourceUnreadableError("db vanished")

    batch = batch_across({0: (0, 10), 1: (0, 20)})
    batch.parts[1].chunks = broken
    with pytest.raises(SourceUnreadableError, match="db vanished"):
        sink.write(batch)
    assert batch.parts[1].source_error is not None and batch.parts[0].source_error is None
    assert [sink.resume_from(app_id_of(n)) for n in range(2)] == [0, 0]


def test_a_batch_with_a_part_beyond_the_table_writes_nothing_and_answers_the_tables_positions(tmp_path, batch_across, app_id_of):
    path = tmp_path / "lake" / "sensor_readings"
    sink = DeltaSink(path)
    sink.write(batch_across({0: (0, 10)}))
    outcome = sink.write(batch_across({0: (20, 30), 1: (0, 5)}))  # source 0's rows 11..20 are not in the table
    assert outcome == Delivered({app_id_of(0): 10, app_id_of(1): 0}, rows=0)
    table = DeltaTable(str(path))
    assert table.to_pyarrow_table().num_rows == 10 and table.transaction_version(app_id_of(1)) is None
