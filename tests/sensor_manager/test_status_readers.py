"""Status files are read through their models (`StatusDocument.read` and its subclasses), never as
raw dicts: a reader that indexes the JSON itself drifts from the writer's shape unnoticed."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_only_the_status_file_helper_reads_raw_status_documents():
    raw_readers = [
        str(path.relative_to(ROOT))
        for package in ("sensor_manager", "uploader")
        for path in sorted((ROOT / package).rglob("*.py"))
        if "read_status(" in (text := path.read_text()) and "def read_status(" not in text
    ]
    assert raw_readers == []
