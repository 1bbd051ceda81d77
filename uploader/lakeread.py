"""Read a local Delta table's current version as a pyarrow dataset, safely inside any process.

`DeltaTable.to_pyarrow_dataset()` reads through a Python-implemented filesystem (deltalake's
`DeltaStorageHandler` in a `pyarrow.fs.PyFileSystem`), so arrow's I/O threads call back into Python
and deltalake's runtime. A scan that stops early (a DuckDB `LIMIT`) leaves such reads queued on
arrow's thread pool; at interpreter exit that pool is shut down after Python has finalized, and the
process hangs, aborts ("terminate called without an active exception") or segfaults. Here the same
fragments (files, partition values and schema from the Delta log, deltalake's own protocol checks,
which refuse deletion vectors and column mapping) are read through pyarrow's native local filesystem,
so no arrow thread ever needs Python. Every reader of the lake (query, monitor, diagnostics, clean)
goes through `open_dataset`.
"""
from __future__ import annotations

from urllib.parse import unquote, urlparse

import pyarrow.dataset as ds
import pyarrow.fs as pa_fs
from deltalake import DeltaTable


def open_dataset(table: DeltaTable) -> ds.Dataset:
    """The table's current version as a dataset over its Parquet files, read by arrow alone."""
    uri = urlparse(table.table_uri)
    if uri.scheme != "file":
        raise ValueError(f"{table.table_uri}: only local Delta tables can be read")
    root = unquote(uri.path)
    return table.to_pyarrow_dataset(filesystem=pa_fs.SubTreeFileSystem(root, pa_fs.LocalFileSystem()))
