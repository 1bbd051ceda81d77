"""`monitor` through the CLI runner: its numbers against the DBs and the lake, on stopped and live-looking fleets."""
from __future__ import annotations

import json
import sqlite3

from deltalake import DeltaTable

from sensor_manager.cli import app


def monitor(runner, fleet, *args):
    result = runner.invoke(app, ["monitor", "--project-dir", str(fleet.root), *args])
    assert "Traceback" not in result.output
    return result


def snapshot(runner, fleet, *args):
    result = monitor(runner, fleet, "--once", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def db_count(fleet, sensor_id):
    conn = sqlite3.connect(fleet.db(sensor_id))
    try:
        return conn.execute("SELECT count(*) FROM sensor_readings").fetchone()[0]
    finally:
        conn.close()


def lake_count(fleet, city):
    table = DeltaTable(str(fleet.layout.lake / "sensor_readings"))
    return table.to_pyarrow_table(filters=[("city", "=", city)]).num_rows


def by_city(document):
    return {c["city"]: c for c in document["cities"]}


def test_json_shape_is_exactly_the_documented_one(runner, fleet):
    document = snapshot(runner, fleet)
    assert list(document) == ["schema_version", "cities", "sensors", "taken_at", "project", "runtime", "fleet_epoch", "totals"]
    assert list(document["totals"]) == ["sensors_running", "sensors_total", "readings_per_second", "rows", "lake_rows"]
    assert list(document["cities"][0]) == [
        "city", "sensors_total", "sensors_running", "readings_per_second", "rows", "anomalies", "uploader_state",
        "lag_rows", "lag_seconds", "last_upload_age_seconds", "errors",
        "display_name", "lake_rows", "dead_lettered", "restarts", "rate_history", "sinks",
    ]
    assert list(document["sensors"][0]) == ["sensor_id", "city", "rows", "last_timestamp", "readings_per_second", "state", "seq", "active_anomaly"]


def test_stopped_project_numbers_match_the_dbs_and_the_lake(runner, fleet):
    fleet.upload("Amsterdam", upto={"Amsterdam_AM00": 15})
    fleet.write_rows(fleet.plan.sensor("Sao_Paulo_SA00"), 7)
    fleet.age_status_files()
    document = snapshot(runner, fleet)
    cities = by_city(document)
    for sensor in document["sensors"]:
        assert sensor["rows"] == db_count(fleet, sensor["sensor_id"])
        assert sensor["state"] == "stopped" and sensor["readings_per_second"] == 0
    amsterdam, sao_paulo = cities["Amsterdam"], cities["Sao_Paulo"]
    assert amsterdam["rows"] == db_count(fleet, "Amsterdam_AM00") + db_count(fleet, "Amsterdam_AM01") == 40
    assert amsterdam["lag_rows"] == amsterdam["rows"] - lake_count(fleet, "Amsterdam") == 5
    assert amsterdam["uploader_state"] == "stopped" and amsterdam["sensors_running"] == 0
    # The oldest row not in the lake is Amsterdam_AM00's seq 16, written 4 s before the fixture's END.
    assert amsterdam["lag_seconds"] > 0
    assert sao_paulo["rows"] == 27 and sao_paulo["lag_rows"] == 27 and sao_paulo["last_upload_age_seconds"] is None
    by_sensor = {s["sensor_id"]: s for s in document["sensors"]}
    assert by_sensor["Sao_Paulo_SA00"]["last_timestamp"] == "2025-06-01T12:00:00.000+00:00"


def test_lag_rises_while_nothing_uploads_and_falls_after_an_upload(runner, fleet):
    fleet.upload("Amsterdam")
    assert by_city(snapshot(runner, fleet))["Amsterdam"]["lag_rows"] == 0
    for sensor in fleet.city_sensors("Amsterdam"):
        fleet.write_rows(sensor, 30)
    risen = by_city(snapshot(runner, fleet))["Amsterdam"]
    assert risen["lag_rows"] == 60 and risen["lag_seconds"] is not None
    fleet.upload("Amsterdam")
    fallen = by_city(snapshot(runner, fleet))["Amsterdam"]
    assert fallen["lag_rows"] == 0 and fallen["lag_seconds"] is None
    assert fallen["rows"] == 100 == lake_count(fleet, "Amsterdam")


def test_live_project_uses_fresh_status_files(runner, fleet):
    fleet.write_sensor_status("Amsterdam", rate=2.5, active_anomaly="trend")
    fleet.upload("Amsterdam", state="running", dead_lettered=3)
    document = snapshot(runner, fleet)
    amsterdam = by_city(document)["Amsterdam"]
    assert amsterdam["sensors_running"] == 2 and amsterdam["readings_per_second"] == 5.0
    assert amsterdam["anomalies"] == 2 and amsterdam["uploader_state"] == "running"
    assert 0 <= amsterdam["last_upload_age_seconds"] < 60
    assert by_city(document)["Sao_Paulo"]["sensors_running"] == 0
    states = {s["sensor_id"]: s["state"] for s in document["sensors"]}
    assert states == {"Amsterdam_AM00": "running", "Amsterdam_AM01": "running", "Sao_Paulo_SA00": "stopped"}


def test_city_drill_down(runner, fleet):
    document = snapshot(runner, fleet, "--city", "são paulo")
    assert [c["city"] for c in document["cities"]] == ["Sao_Paulo"]
    assert [s["sensor_id"] for s in document["sensors"]] == ["Sao_Paulo_SA00"]
    text = monitor(runner, fleet, "--plain", "--city", "Amsterdam")
    assert text.exit_code == 0
    assert "Amsterdam_AM00" in text.output and "DB+WAL" in text.output and "Sao_Paulo_SA00" not in text.output


def test_plain_has_no_escape_codes_even_when_colour_is_forced(runner, fleet, monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm-256color")
    fleet.upload("Amsterdam")
    result = monitor(runner, fleet, "--plain")
    assert result.exit_code == 0
    assert "Amsterdam" in result.output and "São Paulo" in result.output and "LAG ROWS" in result.output
    assert "\x1b" not in result.output


def test_unknown_city_is_a_usage_error(runner, fleet):
    result = monitor(runner, fleet, "--once", "--city", "Atlantis")
    assert result.exit_code == 2
    assert result.output.startswith("error: --city 'Atlantis': not in this project; cities: Amsterdam, São Paulo")


def test_empty_project_is_an_empty_snapshot(runner, project_dir):
    result = runner.invoke(app, ["monitor", "--project-dir", str(project_dir), "--once", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document.pop("taken_at") > 0
    assert document == {"schema_version": 1, "cities": [], "sensors": [], "project": None, "runtime": None, "fleet_epoch": None,
                        "totals": {"sensors_running": 0, "sensors_total": 0, "readings_per_second": 0.0, "rows": 0, "lake_rows": 0}}


def test_json_without_once_streams_one_line_per_refresh(runner, fleet, monkeypatch):
    calls = []

    def sleep(seconds):
        calls.append(seconds)
        if len(calls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr("sensor_manager.cli.observe.time.sleep", sleep)
    result = monitor(runner, fleet, "--json", "--interval", "0.5")
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert len(lines) == 3 and all(line["schema_version"] == 1 for line in lines)
    assert calls == [0.5, 0.5, 0.5]


def test_rates_come_from_seq_changes_between_refreshes(fleet):
    from sensor_manager.observe.monitor import Monitor

    watch = Monitor(fleet.layout, fleet.plan)
    watch.refresh(now=1000.0)
    fleet.write_rows(fleet.plan.sensor("Amsterdam_AM00"), 12)
    snap = watch.refresh(now=1004.0)
    rates = {s.sensor_id: s.readings_per_second for s in snap.sensors}
    assert rates == {"Amsterdam_AM00": 3.0, "Amsterdam_AM01": 0.0, "Sao_Paulo_SA00": 0.0}
    assert [c.rate_history for c in snap.cities] == [[0.0, 3.0], [0.0, 0.0]]


def test_json_carries_the_dashboards_header_totals_and_per_sink_figures(runner, fleet):
    fleet.upload("Amsterdam", upto={"Amsterdam_AM00": 15}, dead_lettered=2)
    document = snapshot(runner, fleet)
    cities = by_city(document)
    amsterdam, sao_paulo = cities["Amsterdam"], cities["Sao_Paulo"]
    assert (document["project"], document["fleet_epoch"], document["runtime"]) == ("obs-test", 1, None)
    assert document["totals"] == {"sensors_running": 0, "sensors_total": 3, "readings_per_second": 0.0, "rows": 60,
                                  "lake_rows": amsterdam["lake_rows"] + sao_paulo["lake_rows"]}
    assert amsterdam["lake_rows"] == lake_count(fleet, "Amsterdam") == 35 and sao_paulo["lake_rows"] == 0
    assert sao_paulo["display_name"] == "São Paulo" and sao_paulo["sinks"] == {}
    assert amsterdam["dead_lettered"] == 2 and amsterdam["restarts"] == 0 and len(amsterdam["rate_history"]) == 1
    assert amsterdam["sinks"]["delta"]["rows_shipped"] == 35 and amsterdam["sinks"]["delta"]["dead_lettered"] == 2
    assert list(amsterdam["sinks"]["delta"]) == ["rows_shipped", "lag_rows", "lag_seconds", "last_success", "last_error", "dead_lettered",
                                                 "retries", "failing_permanently", "request_units", "request_units_per_second",
                                                 "throttled"]


def test_cosmos_request_units_throttling_and_lag_show_per_sink_and_on_screen(runner, fleet):
    fleet.upload("Amsterdam", upto={"Amsterdam_AM00": 15})
    path = fleet.layout.status_file("uploader", "amsterdam")
    document = json.loads(path.read_text())
    document["sinks"]["cosmos"] = {**document["sinks"]["delta"], "lag_rows": 40, "request_units": 1234.5,
                                   "request_units_per_second": 12.5, "throttled": 7}
    path.write_text(json.dumps(document))
    cosmos = by_city(snapshot(runner, fleet))["Amsterdam"]["sinks"]["cosmos"]
    assert (cosmos["request_units"], cosmos["request_units_per_second"], cosmos["throttled"], cosmos["lag_rows"]) == (1234.5, 12.5, 7, 40)
    screen = monitor(runner, fleet, "--once")
    assert screen.exit_code == 0 and "cosmos: lag 40 rows  1,234.5 RU (12.5 RU/s)  throttled 7" in screen.output
    assert "delta: lag" not in screen.output  # the lake reports no service figures


def test_right_after_a_restart_lag_comes_from_the_persisted_checkpoints(runner, fleet):
    """Finding 19: a restarted uploader's status file lists no positions until its first cycle."""
    from uploader.checkpoints import CheckpointStore, checkpoint_path
    from uploader.shipping import ShipNamespace
    from uploader.sources.sqlite import SourceKey

    fleet.upload("Amsterdam", upto={"Amsterdam_AM00": 15, "Amsterdam_AM01": 20})
    status_path = fleet.layout.status_file("uploader", "amsterdam")
    document = json.loads(status_path.read_text())
    store = CheckpointStore(checkpoint_path(fleet.layout.state, "amsterdam"))
    old_epoch = ShipNamespace(fleet.plan.project, fleet.plan.fleet_epoch - 1)
    for source in document["sources"]:
        key = SourceKey(source["source"], source["generation"])
        store.set("delta", ShipNamespace(fleet.plan.project, fleet.plan.fleet_epoch).app_id(key), source["positions"]["delta"])
        store.set("delta", old_epoch.app_id(key), 1)  # another epoch's position is not this one's
    store.close()
    document["state"], document["sources"] = "starting", []  # what a restarted uploader writes first
    status_path.write_text(json.dumps(document))

    amsterdam = by_city(snapshot(runner, fleet))["Amsterdam"]
    assert amsterdam["lag_rows"] == 5  # rows 16..20 of AM00, not all 40
