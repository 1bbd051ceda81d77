"""Maintenance for `clean`: count and delete a project's rows in every sink, then skip or re-ship history."""
from __future__ import annotations

import json

import pyarrow.parquet as pq

from uploader.maintenance import count_project_rows, delete_project_rows, mark_history_shipped, project_sinks
from uploader.pipeline import Uploader


def run_once(inv) -> Uploader:
    uploader = Uploader(inv)
    try:
        assert uploader.run_once()
    finally:
        uploader.close()
    return uploader


def archive_seqs(project) -> list[int]:
    files = sorted((project / "archive").glob("*/*/*.parquet"))
    return sorted(s for f in files for s in pq.read_table(f)["seq"].to_pylist())


def with_archive(inv):
    inv.settings.sinks.parquet.enabled = True
    return inv


def test_count_and_delete_only_the_projects_rows_in_every_sink(project, sensor_db, invocation, tmp_path):
    sensor_db(project / "data" / "Berlin" / "AA11" / "sensor_data.db").append(30)
    inv = with_archive(invocation())
    run_once(inv)
    sinks = project_sinks(inv.settings, inv.sink_context)
    assert count_project_rows(sinks, "test") == {"delta": 30, "parquet": 30}
    assert count_project_rows(sinks, "other") == {"delta": 0, "parquet": 0}
    assert count_project_rows(sinks, "test", fleet_epoch=2) == {"delta": 0, "parquet": 0}
    assert delete_project_rows(sinks, "other") == {"delta": 0, "parquet": 0}
    assert delete_project_rows(sinks, "test") == {"delta": 30, "parquet": 30}
    assert count_project_rows(sinks, "test") == {"delta": 0, "parquet": 0}
    assert archive_seqs(project) == []


def test_after_a_clean_history_is_not_shipped_again_to_any_sink_but_new_rows_are(project, sensor_db, invocation, lake_rows):
    db = sensor_db(project / "data" / "Berlin" / "AA11" / "sensor_data.db")
    db.append(30)
    inv = with_archive(invocation())
    run_once(inv)
    sinks = project_sinks(inv.settings, inv.sink_context)
    db.append(10)  # written while the uploader was stopped: history too
    assert mark_history_shipped(project, sinks) == 1
    delete_project_rows(sinks, "test")
    assert run_once(inv).sink_status["delta"].rows_shipped == 0
    db.append(5)
    shipped = run_once(inv).sink_status
    assert shipped["delta"].rows_shipped == shipped["parquet"].rows_shipped == 5
    assert sorted(lake_rows(inv.table_uri)["seq"].to_pylist()) == [41, 42, 43, 44, 45]
    assert archive_seqs(project) == [41, 42, 43, 44, 45]


def test_a_new_ship_generation_ships_all_history_again_exactly_once(project, sensor_db, invocation, lake_rows):
    sensor_db(project / "data" / "Berlin" / "AA11" / "sensor_data.db").append(30)
    inv = with_archive(invocation())
    run_once(inv)
    delete_project_rows(project_sinks(inv.settings, inv.sink_context), "test")
    plan = json.loads((project / "state" / "plan.json").read_text())
    (project / "state" / "plan.json").write_text(json.dumps({**plan, "ship_generation": 1}))
    inv = with_archive(invocation())
    assert inv.ship_generation == 1
    run_once(inv)
    run_once(inv)
    assert sorted(lake_rows(inv.table_uri)["seq"].to_pylist()) == list(range(1, 31))
    assert archive_seqs(project) == list(range(1, 31))
