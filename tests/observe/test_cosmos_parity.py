"""Parity: one small simulated fleet, shipped by `upload` to the lake and to Cosmos DB (the real sink, into the
Cosmos-protocol test server), answers the same counts and the same latest reading per sensor from
`query --source edge`, `--source lake` and `--source cosmos`."""
from __future__ import annotations

import json
import shutil
import uuid

import pytest
import yaml

from sensor_manager.cli import app

SOURCES = ("edge", "lake", "cosmos")
QUESTIONS = [
    ("--count",),
    ("--count", "--city", "Berlin"),
    ("--count", "--sensor-id", "@first"),
    ("--latest",),
    ("--latest", "--city", "amsterdam"),
]


@pytest.fixture(scope="module")
def shipped_fleet(tmp_path_factory, cosmos_server):
    from typer.testing import CliRunner

    runner = CliRunner()
    root = tmp_path_factory.mktemp("cosmos-parity") / "project"
    root.mkdir()
    config = {
        "project": "cosmos-parity", "sensors_per_city": 2, "cities": ["Amsterdam", "Berlin"],
        "uploader": {"sinks": {"delta": {"enabled": True}, "cosmos": {
            "enabled": True, "endpoint": cosmos_server.endpoint, "key": cosmos_server.key, "verify_tls": False,
            "database_name": f"parity-{uuid.uuid4().hex[:8]}", "container_name": "SensorReadings"}}},
    }
    (root / "sensor-manager.yaml").write_text(yaml.safe_dump(config))
    simulated = runner.invoke(app, ["simulate", "--project-dir", str(root), "--backfill", "120s", "--duration", "0.5"])
    assert simulated.exit_code == 0, simulated.output
    uploaded = runner.invoke(app, ["upload", "--once", "--project-dir", str(root), "--sqlite", str(root / "data")])
    assert uploaded.exit_code == 0, uploaded.output
    return root


def ask(runner, root, source: str, question: tuple[str, ...]) -> list[dict]:
    result = runner.invoke(app, ["query", "--project-dir", str(root), "--source", source, "--json", *question])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["rows"]


@pytest.mark.parametrize("question", QUESTIONS, ids=" ".join)
def test_edge_lake_and_cosmos_agree(runner, shipped_fleet, question):
    if "@first" in question:
        first = ask(runner, shipped_fleet, "edge", ("--latest",))[0]["sensor_id"]
        question = tuple(first if part == "@first" else part for part in question)
    answers = {source: ask(runner, shipped_fleet, source, question) for source in SOURCES}
    assert answers["edge"] not in ([], [{"count": 0}]), "the fleet wrote nothing: the parity would prove nothing"
    assert answers["lake"] == answers["edge"]
    assert answers["cosmos"] == answers["edge"]


def test_every_reading_reached_cosmos_once(runner, shipped_fleet):
    edge = ask(runner, shipped_fleet, "edge", ("--list",))
    cosmos = ask(runner, shipped_fleet, "cosmos", ("--list",))
    assert [(r["sensor_id"], r["rows"]) for r in cosmos] == sorted((r["sensor_id"], r["rows"]) for r in edge)
    assert len(edge) == 4


def test_the_seed_config_file_ships_and_queries(runner, shipped_fleet, cosmos_server, tmp_path, monkeypatch):
    """`upload --cosmos-config` and `query --cosmos-config` with the seed's own file (its keys, its ${VAR}s)."""
    seed = tmp_path / "cosmos-config.yaml"
    seed.write_text(yaml.safe_dump({"cosmos": {
        "endpoint": "${COSMOS_ENDPOINT}", "key": "${COSMOS_KEY}", "database": f"seed-{uuid.uuid4().hex[:8]}",
        "container_name": "SensorReadings", "partition_key": "/city"}, "performance": {"throughput": 400}}))
    monkeypatch.setenv("COSMOS_ENDPOINT", cosmos_server.endpoint)
    monkeypatch.setenv("COSMOS_KEY", cosmos_server.key)
    monkeypatch.setenv("COSMOS_VERIFY_TLS", "false")  # the seed's file has no such key; loopback only
    other_project = tmp_path / "copy"  # the same DBs, checkpoints of its own: everything ships to the new database
    shutil.copytree(shipped_fleet / "data", other_project / "data")
    (other_project / "sensor-manager.yaml").write_text("uploader:\n  sinks:\n    delta:\n      enabled: false\n")
    uploaded = runner.invoke(app, ["upload", "--once", "--project-dir", str(other_project), "--sqlite", str(other_project / "data"),
                                   "--cosmos-config", str(seed)])
    assert uploaded.exit_code == 0, uploaded.output
    assert "performance.throughput: not applicable" in uploaded.stderr
    counted = runner.invoke(app, ["query", "--project-dir", str(other_project), "--source", "cosmos", "--count", "--json",
                                  "--cosmos-config", str(seed)])
    assert counted.exit_code == 0, counted.output
    assert json.loads(counted.stdout)["rows"] == ask(runner, shipped_fleet, "edge", ("--count",))
