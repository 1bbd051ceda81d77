"""`simulate` through the CLI: selection, status files, --check, --identity, --backfill resume, bad input."""
from __future__ import annotations

import json
import time
from datetime import datetime

from fleetcore.statusfiles import write_status
from sensor_manager.cli import app
from sensor_manager.simulator.db import open_readonly


def _simulate(runner, project_dir, config, *args):
    return runner.invoke(app, ["--project-dir", str(project_dir), "simulate", "--config", str(config), *args])


def _timestamps(db_path) -> list[str]:
    return [r[0] for r in open_readonly(db_path).execute("SELECT timestamp FROM sensor_readings ORDER BY id")]


def test_one_city_backfill_then_resume_after_last_timestamp(runner, project_dir, write_config):
    config = write_config()
    first = _simulate(runner, project_dir, config, "--cities", "Berlin", "--rate", "1", "--backfill", "1h",
                      "--duration", "0.01", "--json")
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert summary["sensors"] == 1 and summary["rows_written"] > 3000
    status = json.loads((project_dir / "state/status/sensor-berlin.json").read_text())
    assert status["role"] == "sensor" and status["state"] == "stopped" and status["fatal_error"] is None
    (sensor_id, entry), = status["sensors"].items()
    assert sensor_id.startswith("Berlin_")
    assert set(entry) >= {"db_path", "rows_written", "seq", "last_timestamp", "readings_per_second", "errors",
                          "skipped_readings", "active_anomaly"}
    db_path = entry["db_path"]
    before = _timestamps(db_path)
    second = _simulate(runner, project_dir, config, "--cities", "Berlin", "--rate", "1", "--backfill", "2h",
                       "--duration", "0.01")
    assert second.exit_code == 0, second.output
    after = _timestamps(db_path)
    assert after[: len(before)] == before
    assert after == sorted(after) and len(set(after)) == len(after)  # resumed after the last timestamp
    seqs = [r[0] for r in open_readonly(db_path).execute("SELECT seq FROM sensor_readings ORDER BY id")]
    assert seqs == list(range(1, len(seqs) + 1))
    identity = json.loads((project_dir / "data" / "Berlin" / sensor_id.split("_")[-1] / "identity.json").read_text())
    assert identity["sensor_id"] == sensor_id
    assert set(identity) == {"sensor_id", "location", "device_info", "deployment", "metadata"}
    assert identity["location"]["timezone"] == "Europe/Berlin"


def test_all_cities_share_one_status_file_and_offsets_are_local(runner, project_dir, write_config):
    config = write_config()
    result = _simulate(runner, project_dir, config, "--rate", "0.1", "--backfill", "10m", "--duration", "0.01")
    assert result.exit_code == 0, result.output
    status = json.loads((project_dir / "state/status/sensor-all.json").read_text())
    assert len(status["sensors"]) == 2
    st_johns = next(e for sid, e in status["sensors"].items() if sid.startswith("St_John"))
    offsets = {r[0] for r in open_readonly(st_johns["db_path"]).execute("SELECT original_timezone FROM sensor_readings")}
    assert offsets <= {"-03:30", "-02:30"} and offsets


def test_sensor_id_selection_and_explicit_status_file(runner, project_dir, write_config):
    config = write_config()
    _simulate(runner, project_dir, config, "--rate", "1", "--backfill", "5s", "--duration", "0.01")
    status_all = json.loads((project_dir / "state/status/sensor-all.json").read_text())
    sensor_id = sorted(status_all["sensors"])[0]
    result = _simulate(runner, project_dir, config, "--sensor-id", sensor_id, "--status-file", "data/own/status.json",
                       "--rate", "1", "--backfill", "5s", "--duration", "0.01")
    assert result.exit_code == 0, result.output
    status = json.loads((project_dir / "data/own/status.json").read_text())
    assert list(status["sensors"]) == [sensor_id]


def test_check_reflects_the_status_file(runner, project_dir, write_config):
    config = write_config()
    path = project_dir / "state/status/sensor-berlin.json"
    check = ["--cities", "Berlin", "--check"]
    assert _simulate(runner, project_dir, config, *check).exit_code == 1  # no file yet
    write_status(path, {"role": "sensor", "name": "sensor-berlin", "state": "running", "fatal_error": None,
                        "sensors": {}}, 2.0)
    assert _simulate(runner, project_dir, config, *check).exit_code == 0
    write_status(path, {"role": "sensor", "name": "sensor-berlin", "state": "failed", "fatal_error": "disk full",
                        "sensors": {}}, 2.0)
    assert _simulate(runner, project_dir, config, *check).exit_code == 1
    document = json.loads(path.read_text())
    document.update(fatal_error=None, state="running", updated_at_epoch=time.time() - 60)
    path.write_text(json.dumps(document))
    assert _simulate(runner, project_dir, config, *check).exit_code == 1  # stale


def test_flat_legacy_identity(runner, project_dir, write_config, tmp_path):
    config = write_config()
    legacy = tmp_path / "node_identity.json"
    legacy.write_text(json.dumps({"id": "Lisbon_LX01", "location": "Lisbon", "latitude": 38.72, "longitude": -9.14,
                                  "timezone": "Europe/Lisbon", "manufacturer": "SensorTech",
                                  "model": "EnvMonitor-3000", "firmware_version": "1.4"}))
    result = _simulate(runner, project_dir, config, "--identity", str(legacy), "--rate", "1", "--backfill", "30s",
                       "--duration", "0.01")
    assert result.exit_code == 0, result.output
    db_path = project_dir / "data" / "Lisbon" / "LX01" / "sensor_data.db"
    row = open_readonly(db_path).execute("SELECT * FROM sensor_readings LIMIT 1").fetchone()
    assert row[2] == "Lisbon_LX01" and row[14] == "Lisbon" and None not in row[11:27]  # the fault labels after seq are null on a clean row
    nested = json.loads((db_path.parent / "identity.json").read_text())
    assert nested["device_info"]["firmware_version"] == "1.4"


def test_bad_backfill_is_a_usage_error_and_changes_nothing(runner, project_dir, write_config, tree_listing):
    config = write_config()
    before = tree_listing(project_dir)
    result = _simulate(runner, project_dir, config, "--backfill", "3 weeks")
    assert result.exit_code == 2
    assert "error: --backfill '3 weeks': use a duration like" in result.output and "Traceback" not in result.output
    assert tree_listing(project_dir) == before


def test_bad_identity_file_is_a_usage_error(runner, project_dir, write_config, tmp_path):
    config = write_config()
    broken = tmp_path / "identity.json"
    broken.write_text('{"device_info": {}}')
    result = _simulate(runner, project_dir, config, "--identity", str(broken), "--duration", "0.01")
    assert result.exit_code == 2
    assert "incomplete identity" in result.output and "Traceback" not in result.output


def test_realtime_rows_carry_current_timestamps(runner, project_dir, write_config):
    config = write_config()
    started = datetime.now().astimezone()
    result = _simulate(runner, project_dir, config, "--cities", "Berlin", "--rate", "20", "--duration", "1.5")
    assert result.exit_code == 0, result.output
    entry = next(iter(json.loads((project_dir / "state/status/sensor-berlin.json").read_text())["sensors"].values()))
    stamps = [datetime.fromisoformat(t) for t in _timestamps(entry["db_path"])]
    assert len(stamps) >= 20 and stamps[0] >= started.replace(microsecond=0)
    assert stamps == sorted(stamps)
