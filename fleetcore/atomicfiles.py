"""Replace a file atomically: a reader sees the old document or the new one, never half of either.

The one temp-file-and-rename writer: a unique temp name in the target's directory (so concurrent
writers never share one, and the rename stays on one file system), fsync of the file, rename over the
target, fsync of the directory (so the rename itself survives a power cut).
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator


@contextmanager
def replacing(path: Path, mode: int | None = None) -> Iterator[BinaryIO]:
    """A binary handle to a fresh temp file that replaces `path` when the block exits cleanly.

    On an exception the temp file is removed and `path` is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def write_atomic(path: Path, data: str | bytes, mode: int | None = None) -> None:
    """Replace `path` with `data` (text is written as UTF-8)."""
    with replacing(path, mode) as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # platforms that cannot open a directory (Windows) have no directory fsync
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename has still happened
    finally:
        os.close(fd)
