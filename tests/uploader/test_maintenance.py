"""Maintenance for `clean`: count and delete a project's rows, then skip or re-ship history."""
from __future__ import annotations

from uploader.maintenance import count_project_rows, delete_project_rows, mark_history_shipped, request_reship
from uploader.pipeline import Uploader


def run_once(inv) -> Uploader:
    uploader = Uploader(inv)
    try:
        assert uploader.run_once()
    finally:
        uploader.close()
    return uploader


def test_count_and_delete_only_the_projects_rows(project, sensor_db, invocation, tmp_path):
    sensor_db(project / "data" / "Berlin" / "AA11" / "sensor_data.db").append(30)
    inv = invocation()
    run_once(inv)
    assert count_project_rows(inv.lake, "test") == 30 and count_project_rows(inv.lake, "other") == 0
    assert delete_project_rows(inv.lake, "other") == 0
    assert delete_project_rows(inv.lake, "test") == 30
    assert count_project_rows(inv.lake, "test") == 0
    assert count_project_rows(tmp_path / "no-lake", "test") == 0 and delete_project_rows(tmp_path / "no-lake", "test") == 0


def test_after_a_clean_history_is_not_shipped_again_but_new_rows_are(project, sensor_db, invocation, lake_rows):
    db = sensor_db(project / "data" / "Berlin" / "AA11" / "sensor_data.db")
    db.append(30)
    inv = invocation()
    run_once(inv)
    delete_project_rows(inv.lake, "test")
    db.append(10)  # written while the uploader was stopped: history too
    assert mark_history_shipped(project) == 1
    assert run_once(inv).sink_status["delta"].rows_shipped == 0
    db.append(5)
    run_once(inv)
    assert sorted(lake_rows(inv.table_uri)["seq"].to_pylist()) == [41, 42, 43, 44, 45]


def test_reship_ships_all_history_again_exactly_once(project, sensor_db, invocation, lake_rows):
    sensor_db(project / "data" / "Berlin" / "AA11" / "sensor_data.db").append(30)
    inv = invocation()
    run_once(inv)
    delete_project_rows(inv.lake, "test")
    assert request_reship(inv.lake, "test") == 1
    run_once(inv)
    run_once(inv)
    assert sorted(lake_rows(inv.table_uri)["seq"].to_pylist()) == list(range(1, 31))
