"""fleetcore.statusfiles.read_json_object: the one reader of status files and of the supervisor's spec and state."""
from __future__ import annotations

import pytest

from fleetcore.statusfiles import StatusDocument, read_json_object, write_status


def test_reads_back_what_write_status_wrote(tmp_path):
    path = tmp_path / "status.json"
    write_status(path, {"state": "running"}, 5.0)
    document = read_json_object(path)
    assert document is not None and document["state"] == "running" and document["interval_seconds"] == 5.0


@pytest.mark.parametrize("content", [b"", b"{\"state\": ", b"\xff\xfe not utf-8", b"[1, 2]", b"\"running\"", b"null"])
def test_a_missing_torn_or_non_object_document_reads_as_none(tmp_path, content):
    path = tmp_path / "status.json"
    path.write_bytes(content)
    assert read_json_object(path) is None
    assert read_json_object(tmp_path / "missing.json") is None


def test_read_fresh_is_the_shared_first_half_of_both_healthchecks(tmp_path):
    from sensor_manager.simulator.status_file import is_healthy
    from uploader.status_file import check_health

    path = tmp_path / "status.json"
    for check in (is_healthy, check_health):
        assert check(path) == (False, f"{path}: no readable status file")
    write_status(path, {"state": "running", "sinks": {}, "sensors": {}}, 5.0)
    document, problem = StatusDocument.read_fresh(path)
    assert document is not None and problem == ""
    later = document.updated_at_epoch + 16  # past 3x the 5 s interval
    assert StatusDocument.read_fresh(path, now=later)[0] is None
    for check in (is_healthy, check_health):
        healthy, why = check(path, now=later)
        assert not healthy and why.startswith(f"{path}: stale (updated ") and why.endswith("interval 5.0 s)")
