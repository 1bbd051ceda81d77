"""The Cosmos DB sink against a real Cosmos-protocol server (and a fault proxy in front of it): documents,
exactly once under throttling, faults and kill -9, dead letters, a refused key, clean/reset, --development."""
from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.uploader.chaos import kill_9_repeatedly, sensors_writing
from tests.uploader.sinks.conftest import canonical_rows, cosmos_documents, cosmos_settings, make_batch
from tests.uploader.sinks.test_multi_sink import assert_once_each, edge_counts, lake_keys
from uploader.deadletter import DeadLetterStore
from uploader.pipeline import Uploader
from uploader.settings import UploaderSettings
from uploader.sinks.base import Delivered, Retry
from uploader.sinks.cosmos import CosmosSink, document_id, documents


def cosmos_keys(settings) -> Counter:
    return Counter((d["sensor_id"], d["fleet_epoch"], d["seq"]) for d in cosmos_documents(settings))


def direct(settings, server):
    """The same settings straight to the server (reading back past the fault proxy)."""
    return settings.model_copy(update={"endpoint": server.endpoint})


def uploader_settings(cosmos, **sink) -> UploaderSettings:
    retry = {"initial_seconds": 0.01, "max_seconds": 0.05, "once_max_attempts": 20}
    return UploaderSettings.model_validate({"sinks": {"delta": {"enabled": False}, "cosmos": {
        **cosmos.model_dump(), "batch_size": 200, "retry": retry, **sink}}})


# -- documents ----------------------------------------------------------------------------------------
def test_a_document_is_the_canonical_record_with_a_legal_id_and_its_partition_key():
    [doc] = documents(canonical_rows(7, 7))
    assert doc["id"] == "test.New_York_AB12.1.7" and doc["city"] == "New York"
    assert doc["timestamp"] == "2025-06-01T12:00:07.000000Z" and doc["date"] == "2025-06-01"
    assert (doc["temperature"], doc["status_code"], doc["anomaly_flag"], doc["source_id"]) == (21.5, 0, False, 7)
    json.dumps(doc, allow_nan=False)  # plain JSON types only


@pytest.mark.parametrize("sensor_id", ["a/b", "a\\b", "a?b", "a#b", "50%"])
def test_characters_cosmos_refuses_in_ids_are_escaped_reversibly(sensor_id):
    made = document_id("p/q", sensor_id, 3, 9)
    assert not set("/\\?#") & set(made) and made.endswith(".3.9") and made != document_id("p/q", "a_b", 3, 9)


def test_the_partition_key_may_be_any_top_level_field(cosmos_server):
    settings = cosmos_settings(cosmos_server.endpoint, cosmos_server.key, partition_key="/sensor_id")
    sink = CosmosSink(settings)
    try:
        assert sink.check().ok
        assert isinstance(sink.write(make_batch(0, 5)), Delivered)
    finally:
        sink.close()
    assert [d["sensor_id"] for d in cosmos_documents(settings)] == ["New_York_AB12"] * 5


def test_a_partition_key_no_reading_has_is_a_config_error():
    from fleetcore.errors import ConfigError

    settings = cosmos_settings("https://127.0.0.1:1/", "YWJj", partition_key="/tenant")
    with pytest.raises(ConfigError, match="partition_key: /tenant is no field of a reading"):
        CosmosSink(settings)


def test_a_container_partitioned_otherwise_fails_check_clearly(cosmos_server):
    settings = cosmos_settings(cosmos_server.endpoint, cosmos_server.key)
    CosmosSink(settings).close()
    first = CosmosSink(settings)
    try:
        assert first.check().ok
    finally:
        first.close()
    other = CosmosSink(settings.model_copy(update={"partition_key": "/sensor_id"}))
    try:
        result = other.check()
    finally:
        other.close()
    assert not result.ok and "is partitioned by /city, the config says /sensor_id" in result.message


# -- throttling and faults through the proxy ---------------------------------------------------------
def _fleet(project: Path, sensor_db, sensors: int = 3, rows: int = 200) -> None:
    for n in range(sensors):
        code = f"AA{n:02d}"
        sensor_db(project / "data" / "Berlin" / code / "sensor_data.db", sensor_id=f"Berlin_{code}", location="Berlin").append(rows)


def test_under_20_percent_injected_429s_everything_arrives_once_and_the_status_shows_throttling(
        cosmos_server, cosmos_proxy, project, sensor_db, invocation, caplog):
    caplog.set_level(logging.INFO)
    _fleet(project, sensor_db)
    cosmos = cosmos_settings(cosmos_proxy.endpoint, cosmos_server.key)
    cosmos_proxy.faults.throttle = 0.2
    uploader = Uploader(invocation(settings=uploader_settings(cosmos)))
    try:
        assert uploader.run_once()
        uploader.write_status()
    finally:
        uploader.close()
    assert_once_each(cosmos_keys(direct(cosmos, cosmos_server)), edge_counts(project), "cosmos")
    status = uploader.sink_status["cosmos"]
    assert cosmos_proxy.faults.counts["429"] > 50 and status.throttled == cosmos_proxy.faults.counts["429"]
    assert status.rows_shipped == 600 and status.request_units >= 600
    written = json.loads(uploader.inv.status_path.read_text())["sinks"]["cosmos"]
    assert written["throttled"] == status.throttled and written["request_units"] == status.request_units
    assert cosmos_server.key not in uploader.inv.status_path.read_text()
    assert cosmos_server.key not in caplog.text and "Request URL" not in caplog.text  # no per-request SDK logging


def test_503s_and_dropped_connections_are_retried_until_everything_arrived_once(
        cosmos_server, cosmos_proxy, project, sensor_db, invocation):
    _fleet(project, sensor_db, sensors=2)
    cosmos = cosmos_settings(cosmos_proxy.endpoint, cosmos_server.key)
    cosmos_proxy.faults.unavailable, cosmos_proxy.faults.drop = 0.1, 0.05
    uploader = Uploader(invocation(settings=uploader_settings(cosmos)))
    try:
        assert uploader.run_once()
    finally:
        uploader.close()
    assert cosmos_proxy.faults.counts["503"] > 0 and cosmos_proxy.faults.counts["drop"] > 0
    assert_once_each(cosmos_keys(direct(cosmos, cosmos_server)), edge_counts(project), "cosmos")


def test_a_document_the_service_refuses_is_dead_lettered_and_the_rest_goes_through(
        cosmos_server, cosmos_proxy, project, sensor_db, invocation):
    _fleet(project, sensor_db, sensors=1, rows=50)
    cosmos = cosmos_settings(cosmos_proxy.endpoint, cosmos_server.key)
    cosmos_proxy.faults.refuse_ids = {"test.Berlin_AA00.1.17": 413}
    uploader = Uploader(invocation(settings=uploader_settings(cosmos)))
    try:
        assert uploader.run_once()
    finally:
        uploader.close()
    keys = cosmos_keys(direct(cosmos, cosmos_server))
    assert sum(keys.values()) == 49 and ("Berlin_AA00", 1, 17) not in keys
    [letter] = DeadLetterStore(uploader.inv.state_root / "deadletter").read("cosmos").to_pylist()
    assert letter["source_id"] == 17 and letter["reason"].startswith("rejected by cosmos: 413")
    assert uploader.sink_status["cosmos"].dead_lettered == 1
    assert max(uploader.tracked[next(iter(uploader.tracked))].positions.values()) == 50


def test_a_refused_key_stops_the_sink_with_a_remedy_and_no_hot_loop(cosmos_server, cosmos_proxy, project, sensor_db,
                                                                    invocation):
    _fleet(project, sensor_db, sensors=1, rows=20)
    cosmos = cosmos_settings(cosmos_proxy.endpoint, cosmos_server.key)
    CosmosSink(cosmos).close()
    cosmos_proxy.faults.answer_all = 401
    uploader = Uploader(invocation(settings=uploader_settings(cosmos), continuous=True))
    try:
        for _ in range(5):
            for backoff in uploader.backoffs.values():
                backoff.not_before = 0.0
            uploader.cycle(fixed_targets=False)
    finally:
        uploader.close()
    status = uploader.sink_status["cosmos"]
    assert status.failing_permanently and status.retries == 1
    assert "refused the key" in status.last_error and "COSMOS_KEY" in status.last_error


# -- clean / reset / --development -------------------------------------------------------------------
def test_clean_and_reset_delete_only_this_projects_documents_of_the_asked_epoch(cosmos_server, app_id_of, monkeypatch):
    from tests.uploader.sinks.conftest import source_lineage
    from uploader.batch import Batch, Lineage, Part

    monkeypatch.setattr("uploader.sinks.cosmos.DELETE_PAGE", 100)
    settings = cosmos_settings(cosmos_server.endpoint, cosmos_server.key)
    sink = CosmosSink(settings)

    def epoch_batch(epoch: int, upto: int, project: str = "test") -> Batch:
        base = source_lineage(0)
        lineage = Lineage(project, epoch, base.source, base.generation, base.uploader_id, base.city_fallback)
        rows = [canonical_rows(1, upto, lineage=lineage)]
        return Batch([Part(f"{app_id_of(0)}-{project}-{epoch}", 0, upto, lineage, lambda rejected: iter(rows))])

    try:
        for epoch, upto, project in ((1, 250, "test"), (2, 30, "test"), (1, 7, "other")):
            assert isinstance(sink.write(epoch_batch(epoch, upto, project)), Delivered)
        assert (sink.count_project("test"), sink.count_project("test", 1), sink.count_project("test", 2)) == (280, 250, 30)
        assert sink.delete_project("test", fleet_epoch=1) == 250  # reset: the old epoch, three pages
        assert (sink.count_project("test"), sink.count_project("other")) == (30, 7)
        assert sink.delete_project("test") == 30  # clean
        assert (sink.count_project("test"), sink.count_project("other")) == (0, 7)
    finally:
        sink.close()
    assert sink.usage.snapshot()["request_units"] > 0


def test_development_stamps_current_times_and_replays_into_the_same_container(cosmos_server, project, sensor_db,
                                                                              invocation):
    _fleet(project, sensor_db, sensors=1, rows=30)
    cosmos = cosmos_settings(cosmos_server.endpoint, cosmos_server.key)
    started = datetime.now(timezone.utc) - timedelta(seconds=1)
    for run in range(2):
        uploader = Uploader(invocation(settings=uploader_settings(cosmos), development=True))
        try:
            assert uploader.run_once()
        finally:
            uploader.close()
        assert uploader.sink_status["cosmos"].rows_shipped == 30, f"run {run}"
        time.sleep(1.1)  # the next --development run gets a new epoch (seconds)
    docs = cosmos_documents(cosmos)
    assert len(docs) == 60 and len({d["fleet_epoch"] for d in docs}) == 2
    assert all(datetime.fromisoformat(d["timestamp"].replace("Z", "+00:00")) >= started for d in docs)


# -- kill -9 while shipping ---------------------------------------------------------------------------
def _config(project: Path, server, database: str) -> Path:
    config = project / "sensor-manager.yaml"
    config.write_text(
        "uploader:\n  sinks:\n    delta: {batch_size: 300}\n"
        f"    cosmos: {{enabled: true, endpoint: '{server.endpoint}', key: '{server.key}', verify_tls: false,\n"
        f"             database_name: {database}, batch_size: 300, retry: {{initial_seconds: 0.05, max_seconds: 0.5}}}}\n")
    return config


WRITER_RATE = 100  # readings/s per sensor: about what one uploader ships to the local server on a shared machine


def kill_9(project: Path, server, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    database = f"kill-{seed}-{kills}-{os.getpid()}"
    config = _config(project, server, database)
    uploader = [sys.executable, "-m", "uploader", "--sqlite", str(project / "data"), "--project-dir", str(project),
                "--config", str(config)]
    with sensors_writing(project, WRITER_RATE):
        kill_9_repeatedly(uploader, kills, rng, (1.5, 3.0))  # start-up (azure, deltalake imports) takes ~1 s
    final = subprocess.run([*uploader, "--once"], capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-3000:]
    assert server.key not in final.stderr
    edge = edge_counts(project)
    assert sum(edge.values()) > 500
    settings = cosmos_settings(server.endpoint, server.key, database_name=database)
    assert_once_each(cosmos_keys(settings), edge, "cosmos")
    assert_once_each(lake_keys(project), edge, "delta")


@pytest.mark.slow
def test_kill_9_three_times_while_shipping_to_cosmos_leaves_each_key_once(cosmos_server, project):
    kill_9(project, cosmos_server, kills=3, seed=int(os.environ.get("KILL9_SEED", "21")))


@pytest.mark.soak
@pytest.mark.timeout(900)
def test_kill_9_twenty_times_while_shipping_to_cosmos_leaves_each_key_once(cosmos_server, project):
    kill_9(project, cosmos_server, kills=20, seed=int(os.environ.get("KILL9_SEED", "22")))


def test_a_batch_the_account_cannot_take_is_retried_not_lost(cosmos_server, cosmos_proxy, batch_of, app_id):
    sink = CosmosSink(cosmos_settings(cosmos_proxy.endpoint, cosmos_server.key))
    try:
        assert sink.check().ok
        cosmos_proxy.faults.unavailable = 1.0
        outcome = sink.write(batch_of(0, 20))
        assert isinstance(outcome, Retry) and "503" in outcome.reason and not outcome.permanent
        cosmos_proxy.faults.unavailable = 0.0
        assert sink.write(batch_of(0, 20)) == Delivered({app_id: 20}, rows=20)
    finally:
        sink.close()
