"""fleetcore.atomicfiles: the one temp-file-and-rename writer every status, plan, spec and sidecar file goes through."""
from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetcore.atomicfiles import replacing, write_atomic


def leftovers(directory: Path, name: str) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != name)


@settings(max_examples=50, deadline=None)
@given(first=st.binary() | st.text(), second=st.binary() | st.text())
def test_the_file_holds_exactly_the_last_write_and_no_temp_file_stays(tmp_path_factory, first, second):
    directory = tmp_path_factory.mktemp("atomic")
    path = directory / "doc.json"
    write_atomic(path, first)
    write_atomic(path, second)
    assert path.read_bytes() == (second.encode("utf-8") if isinstance(second, str) else second)
    assert leftovers(directory, "doc.json") == []


@settings(max_examples=25, deadline=None)
@given(old=st.binary(min_size=1), partial=st.binary())
def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path_factory, old, partial):
    directory = tmp_path_factory.mktemp("atomic")
    path = directory / "doc.json"
    write_atomic(path, old)
    with pytest.raises(RuntimeError):
        with replacing(path) as handle:
            handle.write(partial)
            raise RuntimeError("the writer died half way")
    assert path.read_bytes() == old
    assert leftovers(directory, "doc.json") == []


def test_two_writers_at_once_never_share_a_temp_file(tmp_path):
    path = tmp_path / "docker-compose.yml"
    with replacing(path) as outer:
        outer.write(b"outer")
        with replacing(path) as inner:  # a fixed temp name would make these two handles one file
            inner.write(b"inner")
        assert path.read_bytes() == b"inner"
    assert path.read_bytes() == b"outer"
    assert leftovers(tmp_path, path.name) == []


def test_mode_is_set_before_the_file_appears(tmp_path):
    path = tmp_path / "nested" / "uploader-settings.json"
    write_atomic(path, "{}", mode=0o600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
