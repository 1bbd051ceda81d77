"""uploader.lakeread: the Delta table's files as a pyarrow dataset read through arrow's own filesystem."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.fs as pa_fs
import pytest
from deltalake import DeltaTable, write_deltalake

from uploader.lakeread import open_dataset


def test_partition_values_come_from_the_log_even_for_escaped_paths(tmp_path):
    path = tmp_path / "a lake" / "sensor_readings"
    write_deltalake(str(path), pa.table({"city": ["New York", "São Paulo", "a/b%c"], "v": [1, 2, 3]}), partition_by=["city"])
    write_deltalake(str(path), pa.table({"city": ["New York"], "v": [4]}), partition_by=["city"], mode="append")
    dataset = open_dataset(DeltaTable(str(path)))
    assert isinstance(dataset.filesystem, pa_fs.SubTreeFileSystem)  # never deltalake's Python filesystem
    assert sorted(zip(*dataset.to_table().to_pydict().values(), strict=True)) == sorted(
        [("New York", 1), ("São Paulo", 2), ("a/b%c", 3), ("New York", 4)])


def test_deleted_rows_stay_deleted(tmp_path):
    path = str(tmp_path / "t")
    write_deltalake(path, pa.table({"city": ["A", "A", "B"], "v": [1, 2, 3]}), partition_by=["city"])
    DeltaTable(path).delete("v = 2")
    assert sorted(open_dataset(DeltaTable(path)).to_table().column("v").to_pylist()) == [1, 3]


def test_only_local_tables(tmp_path):
    class Remote:
        table_uri = "s3://bucket/sensor_readings"

    with pytest.raises(ValueError, match="only local"):
        open_dataset(Remote())
