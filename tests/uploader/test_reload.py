"""Settings applied while the uploader runs: reloadable keys all at once at a batch boundary, anything
else refused with nothing changed; a stage per sink, and stage switches that carry positions over."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from uploader.invocation import resolve_invocation
from uploader.pipeline import Uploader
from uploader.reload import settings_digest
from uploader.status_file import UploaderStatus


def _settings(path: Path, **uploader) -> str:
    data = json.dumps({"project": "test", "uploader": uploader}).encode()
    path.write_bytes(data)
    return settings_digest(data)


@pytest.fixture
def running(project, sensor_db):
    """`running(**uploader_settings)` → (a continuous Uploader reading its settings file, the file, the sensor DB)."""
    made = []

    def start(**uploader):
        from uploader.settings import read_settings_file

        path = project / "state" / "uploader-settings.json"
        digest = _settings(path, **uploader)
        settings, name = read_settings_file(path)
        db = sensor_db(project / "data" / "Berlin" / "AA11" / "sensor_data.db", sensor_id="Berlin_AA11", location="Berlin")
        uploader_ = Uploader(resolve_invocation(sqlite=project / "data", settings=settings, config_project=name,
                                                project_dir=project, continuous=True, config_path=path, settings_digest=digest))
        made.append(uploader_)
        return uploader_, path, db
    yield start
    for uploader_ in made:
        uploader_.close()


def _reload(uploader: Uploader) -> bool:
    change = uploader.watcher.poll(force=True)
    assert change is not None
    applied = uploader.apply_settings(change)
    uploader.write_status()
    return applied


def _status(uploader: Uploader) -> UploaderStatus:
    return UploaderStatus.model_validate_json(uploader.inv.status_path.read_text())


def test_a_change_to_a_key_that_is_not_reloadable_is_refused_and_nothing_changes(running, lake_rows, project):
    uploader, path, db = running(stage="raw", interval_seconds=5)
    first = settings_digest(path.read_bytes())
    db.append(10)
    uploader.cycle(fixed_targets=False)
    refused = _settings(path, stage="sanitized", interval_seconds=1, naive_timestamps="local")
    assert not _reload(uploader)
    status = _status(uploader)
    assert status.applied_settings.digest == first and status.rejected_settings.digest == refused
    assert status.rejected_settings.errors == [
        "uploader.naive_timestamps: changed, but not reloadable; restart the uploader to apply it"]
    assert uploader.inv.interval == 5 and uploader.deliveries[0].stage.name == "raw"  # all or nothing
    _settings(path, stage="bogus")
    assert not _reload(uploader)
    assert "uploader.stage" in _status(uploader).rejected_settings.errors[0]
    applied = _settings(path, stage="raw", interval_seconds=1, sinks={"delta": {"batch_size": 3}})
    assert _reload(uploader)
    status = _status(uploader)
    assert status.applied_settings.digest == applied and status.rejected_settings is None
    assert uploader.inv.interval == 1 and uploader.deliveries[0].settings.batch_size == 3
    db.append(10)
    uploader.cycle(fixed_targets=False)
    assert lake_rows(project / "lake" / "sensor_readings").num_rows == 20


def test_each_sink_receives_its_own_stage_and_a_sink_enabled_live_starts_shipping(running, project, lake_rows):
    uploader, path, db = running(stage="raw")
    db.append(30)
    uploader.cycle(fixed_targets=False)
    assert _reload_with(uploader, path, stage="raw", sinks={"parquet": {"enabled": True, "stage": "sanitized"}})
    assert [(d.sink.name, d.stage.name) for d in uploader.deliveries] == [("delta", "raw"), ("parquet", "sanitized")]
    db.append(30)
    uploader.cycle(fixed_targets=False)
    lake = lake_rows(project / "lake" / "sensor_readings")
    archive = ds.dataset(sorted((project / "archive").rglob("*-*-*.parquet")), format="parquet").to_table()
    assert lake.num_rows == archive.num_rows == 60
    assert set(lake["stage"].to_pylist()) == {"raw"} and set(archive["stage"].to_pylist()) == {"sanitized"}
    assert "SN-1" in lake["serial_number"].to_pylist() and "SN-1" not in archive["serial_number"].to_pylist()
    assert _reload_with(uploader, path, stage="raw")
    assert [d.sink.name for d in uploader.deliveries] == ["delta"] and list(_status(uploader).sinks) == ["delta"]


def _reload_with(uploader: Uploader, path: Path, **settings) -> bool:
    _settings(path, **settings)
    return _reload(uploader)


def test_raw_to_aggregated_and_back_carries_positions_between_the_tables(running, project, lake_rows):
    uploader, path, db = running(stage="raw", aggregated={"allowed_lateness": "0s"})
    db.append(90)  # 90 s of readings, one a second
    uploader.cycle(fixed_targets=False)
    assert _reload_with(uploader, path, stage="aggregated", aggregated={"allowed_lateness": "0s"})
    db.append(150)
    uploader.cycle(fixed_targets=False)
    assert _reload_with(uploader, path, stage="raw", aggregated={"allowed_lateness": "0s"})
    db.append(10)
    uploader.cycle(fixed_targets=False)
    switches = _status(uploader).stage_switches
    assert [(s["from"], s["to"], s["positions"]) for s in switches] == [
        ("raw", "aggregated", {"Berlin/AA11/sensor_data.db": 90}), ("aggregated", "raw", {"Berlin/AA11/sensor_data.db": 240})]
    readings = sorted(lake_rows(project / "lake" / "sensor_readings")["seq"].to_pylist())
    assert readings == list(range(1, 91)) + list(range(241, 251))
    windows = lake_rows(project / "lake" / "sensor_readings_1m").sort_by("window_start").to_pylist()
    # Minute 1 holds seqs 61-120: its first 30 went raw, so its window starts at the switch.
    assert [(w["first_seq"], w["last_seq"], w["rows"]) for w in windows] == [(91, 120, 30), (121, 180, 60)]


def test_a_restart_under_another_stage_is_a_switch_at_the_old_tables_positions(project, sensor_db, invocation, lake_rows):
    from uploader.settings import UploaderSettings

    db = sensor_db(project / "data" / "Berlin" / "AA11" / "sensor_data.db", sensor_id="Berlin_AA11", location="Berlin")
    db.append(50)
    for stage, more in (("raw", 0), ("aggregated", 200)):
        db.append(more)
        uploader = Uploader(invocation(settings=UploaderSettings.model_validate({"stage": stage})))
        try:
            assert uploader.run_once()
            switches = uploader.switches.recent
        finally:
            uploader.close()
    assert [(s["from"], s["to"], s["positions"]) for s in switches] == [("raw", "aggregated", {"Berlin/AA11/sensor_data.db": 50})]
    assert lake_rows(project / "lake" / "sensor_readings").num_rows == 50
    windows = lake_rows(project / "lake" / "sensor_readings_1m").sort_by("window_start").to_pylist()
    assert windows[0]["first_seq"] == 51


@pytest.mark.timeout(60)
def test_a_once_run_ships_what_it_started_with_whatever_happens_to_its_settings_file(project, sensor_db, lake_rows):
    from uploader.settings import read_settings_file

    path = project / "state" / "uploader-settings.json"
    digest = _settings(path, sinks={"delta": {"batch_size": 10}})
    settings, name = read_settings_file(path)
    sensor_db(project / "data" / "Berlin" / "AA11" / "sensor_data.db", sensor_id="Berlin_AA11", location="Berlin").append(100)
    uploader = Uploader(resolve_invocation(sqlite=project / "data", settings=settings, config_project=name,
                                           project_dir=project, config_path=path, settings_digest=digest))
    _settings(path, stage="sanitized")
    try:
        assert uploader.run_once()
    finally:
        uploader.close()
    table = lake_rows(project / "lake" / "sensor_readings")
    assert table.num_rows == 100 and set(table["stage"].to_pylist()) == {"raw"}
    assert _status(uploader).applied_settings.digest == digest
