"""Read a local Delta table's current version, safely inside any process: the one way to open the lake.

`DeltaTable.to_pyarrow_dataset()` reads through a Python-implemented filesystem (deltalake's
`DeltaStorageHandler` in a `pyarrow.fs.PyFileSystem`), so arrow's I/O threads call back into Python
and deltalake's runtime. A scan that stops early (a DuckDB `LIMIT`) leaves such reads queued on
arrow's thread pool; at interpreter exit that pool is shut down after Python has finalized, and the
process hangs, aborts ("terminate called without an active exception") or segfaults. Here the same
fragments (files, partition values and schema from the Delta log, deltalake's own protocol checks,
which refuse deletion vectors and column mapping) are read through pyarrow's native local filesystem,
so no arrow thread ever needs Python. Every reader of the lake (query, monitor, diagnostics, clean)
goes through `open_table` and `open_dataset`; a damaged log becomes one `LakeUnreadableError`.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse

import pyarrow.dataset as ds
import pyarrow.fs as pa_fs
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError

from fleetcore.errors import LakeUnreadableError


@contextmanager
def reading(path: str | Path) -> Iterator[None]:
    """Turn deltalake's failures to read the log into one clear `LakeUnreadableError` naming the table."""
    try:
        yield
    except (DeltaError, OSError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise LakeUnreadableError(str(path), reason) from None


def open_table(path: str | Path) -> DeltaTable | None:
    """The table at `path`, or None when nothing has been written there yet."""
    if not (Path(path) / "_delta_log").is_dir():
        return None
    with reading(path):
        try:
            return DeltaTable(str(path))
        except TableNotFoundError:  # a log folder without a first commit yet
            return None


def local_path(table: DeltaTable) -> str:
    """The table's directory (the uploader writes only local lakes)."""
    uri = urlparse(table.table_uri)
    if uri.scheme != "file":
        raise ValueError(f"{table.table_uri}: only local Delta tables can be read")
    return unquote(uri.path).rstrip("/")


def open_dataset(table: DeltaTable, filesystem: pa_fs.FileSystem | None = None) -> ds.Dataset:
    """The table's current version as a dataset over its Parquet files, read by arrow alone.

    `filesystem` is an arrow filesystem rooted at the table (e.g. a `SubTreeFileSystem` over
    `pyarrow.fs.S3FileSystem`) for a table that is not local; by default the local directory."""
    where = table.table_uri if filesystem is not None else local_path(table)
    with reading(where):
        return table.to_pyarrow_dataset(filesystem=filesystem or pa_fs.SubTreeFileSystem(where, pa_fs.LocalFileSystem()))
