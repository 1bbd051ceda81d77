"""Parquet-archive-specific behaviour on top of the contract suite: layout, crash safety, compaction."""
from __future__ import annotations

import dataclasses
import json

import duckdb
import pyarrow.parquet as pq
import pytest

from uploader.batch import Batch, Part
from uploader.sinks import parquet as archive
from uploader.sinks.base import Delivered, Retry
from uploader.sinks.parquet import ParquetArchiveSink, compact, compact_sensor
from uploader.sources.sqlite import SourceUnreadableError


def names(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_parts_are_immutable_zstd_files_named_by_generation_and_id_range(tmp_path, batch_of):
    sink = ParquetArchiveSink(tmp_path)
    sink.write(batch_of(0, 10))
    sink.write(batch_of(10, 25))
    sensor = tmp_path / "New_York" / "AB12"
    assert names(sensor) == ["gen-1-1-10.parquet", "gen-1-11-25.parquet"]
    meta = pq.ParquetFile(sensor / "gen-1-11-25.parquet").metadata
    assert meta.num_rows == 15 and meta.row_group(0).column(0).compression == "ZSTD"


def test_a_fresh_sink_resumes_from_the_files_themselves(tmp_path, batch_of, app_id):
    ParquetArchiveSink(tmp_path).write(batch_of(0, 30))
    restarted = ParquetArchiveSink(tmp_path)
    assert restarted.resume_from(app_id) == 30
    assert restarted.write(batch_of(0, 30)) == Delivered({app_id: 30}, rows=0)
    assert restarted.resume_from("sensor-manager/test/epoch-1/ship-0/Paris/ZZ99/sensor_data.db@gen-1") == 0


def test_a_crash_before_the_rename_leaves_no_part_file_and_the_replay_writes_once(tmp_path, batch_of, app_id, monkeypatch):
    sink = ParquetArchiveSink(tmp_path)
    sink.write(batch_of(0, 10))
    real_publish = archive.publish

    def crash(tmp, final):
        raise OSError("killed between write and rename")

    monkeypatch.setattr(archive, "publish", crash)
    assert isinstance(sink.write(batch_of(10, 20)), Retry)
    sensor = tmp_path / "New_York" / "AB12"
    assert names(sensor) == ["gen-1-1-10.parquet"]  # no partial or temp file
    # A temp file a killed process left behind is ignored, then swept by the next write there.
    (sensor / ".tmp-deadbeef-gen-1-11-20.parquet").write_bytes(b"PAR1 half written")
    monkeypatch.setattr(archive, "publish", real_publish)
    assert ParquetArchiveSink(tmp_path).resume_from(app_id) == 10
    assert sink.write(batch_of(10, 20)) == Delivered({app_id: 20}, rows=10)
    assert names(sensor) == ["gen-1-1-10.parquet", "gen-1-11-20.parquet"]


def test_a_source_failing_mid_stream_publishes_no_part_of_the_batch(tmp_path, batch_across, batch_of, app_id_of):
    sink = ParquetArchiveSink(tmp_path)
    [rows] = list(batch_of(0, 10, source=1).parts[0].chunks([]))

    def broken(rejected):
        yield rows
        raise SourceUnreadableError("db vanished")

    batch = batch_across({0: (0, 10), 1: (0, 20)})
    batch.parts[1].chunks = broken
    with pytest.raises(SourceUnreadableError, match="db vanished"):
        sink.write(batch)
    assert [sink.resume_from(app_id_of(n)) for n in range(2)] == [0, 0]
    assert not list(tmp_path.glob("New_York/*/*"))


def test_an_all_rejected_part_still_moves_the_position(tmp_path, batch_of, app_id):
    sink = ParquetArchiveSink(tmp_path)
    assert sink.write(batch_of(0, 7, rows=[])) == Delivered({app_id: 7}, rows=0)
    assert ParquetArchiveSink(tmp_path).resume_from(app_id) == 7


def test_compaction_builds_the_consolidated_view_once_per_row(tmp_path, batch_of):
    sink = ParquetArchiveSink(tmp_path)
    for after in range(0, 50, 10):
        sink.write(batch_of(after, after + 10))
    [done] = compact(tmp_path)
    view = tmp_path / "New_York" / "AB12.parquet"
    assert done.view == view and done.new_parts == 5 and done.rows_written == 50
    assert sorted(pq.read_table(view)["seq"].to_pylist()) == list(range(1, 51))
    seqs = duckdb.sql(f"SELECT seq FROM read_parquet('{view}/*.parquet') ORDER BY seq").fetchall()
    assert [s for (s,) in seqs] == list(range(1, 51))
    assert compact_sensor(tmp_path / "New_York" / "AB12").new_parts == 0  # nothing new: nothing rewritten


def test_compaction_cost_grows_with_the_new_data_not_the_history(tmp_path, batch_of):
    sink = ParquetArchiveSink(tmp_path)
    sensor = tmp_path / "New_York" / "AB12"
    sink.write(batch_of(0, 1000))
    assert compact_sensor(sensor).rows_written == 1000
    written, position = [], 1000
    for _ in range(20):
        sink.write(batch_of(position, position + 10))
        position += 10
        written.append(compact_sensor(sensor).rows_written)
    # The 1000-row segment is never rewritten; small segments merge geometrically.
    assert max(written) < 1000 and sum(written) < 20 * 10 * 6
    result = compact_sensor(sensor)
    assert result.segments <= 8
    assert sorted(pq.read_table(sensor.with_name("AB12.parquet"))["seq"].to_pylist()) == list(range(1, position + 1))


def test_a_reader_of_the_previous_view_keeps_reading_it_after_a_compaction(tmp_path, batch_of):
    sink = ParquetArchiveSink(tmp_path)
    sensor = tmp_path / "New_York" / "AB12"
    sink.write(batch_of(0, 10))
    compact_sensor(sensor)
    view = sensor.with_name("AB12.parquet")
    before = view.resolve()
    sink.write(batch_of(10, 20))
    compact_sensor(sensor)
    assert view.resolve() != before
    assert pq.read_table(before).num_rows == 10 and pq.read_table(view).num_rows == 20


def test_compaction_state_is_a_watermark_per_generation_not_a_list_of_parts(tmp_path, batch_of):
    sink = ParquetArchiveSink(tmp_path)
    sensor = tmp_path / "New_York" / "AB12"
    for after in range(0, 30, 10):
        sink.write(batch_of(after, after + 10))
    compact_sensor(sensor)
    [part] = batch_of(0, 5).parts  # the same DB path, recreated as a new generation: ids restart at 1
    newer = Part(part.app_id.replace("@gen-1", "@gen-2"), 0, 5,
                 dataclasses.replace(part.lineage, generation="gen-2"), part.chunks)
    assert isinstance(sink.write(Batch([newer])), Delivered)
    assert compact_sensor(sensor).new_parts == 1
    state = json.loads((sensor.with_name("AB12.parquet") / archive.STATE_FILE).read_text())
    assert state["upto"] == {"gen-1": 30, "gen-2": 5}
    view = pq.read_table(sensor.with_name("AB12.parquet"))
    assert sorted(view["seq"].to_pylist()) == sorted([*range(1, 31), *range(1, 6)])


def test_compaction_pads_parts_written_before_the_fault_columns(tmp_path, batch_of):
    sink = ParquetArchiveSink(tmp_path)
    sensor = tmp_path / "New_York" / "AB12"
    sink.write(batch_of(0, 10))
    [old] = sensor.glob("*.parquet")
    pq.write_table(pq.read_table(old).drop_columns(["fault", "duplicate_of"]), old)  # as an archive from before them
    sink.write(batch_of(10, 20))
    assert compact_sensor(sensor).rows_written == 20
    view = pq.read_table(sensor.with_name("AB12.parquet"))
    assert sorted(view["seq"].to_pylist()) == list(range(1, 21))
    assert view["fault"].null_count == view["duplicate_of"].null_count == 20
