"""`query --source cosmos` against the real Cosmos-protocol test server, answer for answer equal to `--source lake`.

The container holds the hand-built fleet's lake rows as the Cosmos sink's documents (the canonical record,
JSON types, ISO timestamps with Z, an `id`, partitioned by /city), so every filter and mode can be compared
with the lake's answer to the same question. The sink's own documents are compared in test_cosmos_parity.py.
"""
from __future__ import annotations

import json
import socket
import uuid
from datetime import date, datetime, timezone

import pytest
import yaml

from sensor_manager.cli import app
from sensor_manager.observe import lake

from .conftest import build_fleet

HOSTILE = "x' OR 1=1 --"


def cosmos_settings(server, database: str, container: str = "SensorReadings", **extra) -> dict:
    return {"endpoint": server.endpoint, "key": server.key, "database_name": database, "container_name": container,
            "verify_tls": False, "enabled": False, **extra}


def write_config(root, settings: dict) -> None:
    (root / "sensor-manager.yaml").write_text(yaml.safe_dump({"uploader": {"sinks": {"cosmos": settings}}}))


def as_document(row: dict) -> dict:
    """A lake row as the Cosmos sink writes it."""
    doc = {}
    for name, value in row.items():
        if isinstance(value, datetime):
            value = value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        elif isinstance(value, date):
            value = value.isoformat()
        doc[name] = value
    doc["id"] = f"{row['sensor_id']}.{row['fleet_epoch']}.{row['seq']}"
    return doc


def fill_container(server, database: str, rows: list[dict], container: str = "SensorReadings", partition_key: str = "/city"):
    from azure.cosmos import PartitionKey

    from uploader.sinks.cosmos import CosmosSinkSettings
    from uploader.sinks.cosmos_client import sync_client

    client = sync_client(CosmosSinkSettings(**cosmos_settings(server, database, container)))
    target = client.create_database_if_not_exists(database).create_container_if_not_exists(container, PartitionKey(path=partition_key))
    for row in rows:
        target.create_item(as_document(row))
    return target


def lake_rows(fleet) -> list[dict]:
    table = lake.open_table(fleet.layout)
    return table.to_pyarrow_table().to_pylist()


@pytest.fixture(scope="module")
def shipped(tmp_path_factory, cosmos_server):
    """The conftest's fleet uploaded to the lake, and the same rows in a fresh database of the test server (read-only
    for the tests: filling a container costs seconds)."""
    fleet = build_fleet(tmp_path_factory.mktemp("cosmos-query") / "project", {"Amsterdam": 2, "São Paulo": 1}, rows=20)
    for city in ("Amsterdam", "Sao_Paulo"):
        fleet.upload(city)
    database = f"db-{uuid.uuid4().hex[:8]}"
    fill_container(cosmos_server, database, lake_rows(fleet))
    write_config(fleet.root, cosmos_settings(cosmos_server, database))
    return fleet


def run(runner, fleet, *args):
    return runner.invoke(app, ["query", "--project-dir", str(fleet.root), *args])


def json_of(result) -> dict:
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return json.loads(result.stdout)


QUESTIONS = [
    ("--count",),
    ("--count", "--city", "amsterdam"),
    ("--count", "--city", "São Paulo"),
    ("--count", "--city", "sao-paulo", "--sensor-id", "Sao_Paulo_SA00"),
    ("--count", "--since", "2025-06-01T11:59:55"),
    ("--count", "--since", "1h"),
    ("--count", "--sensor-id", HOSTILE),
    ("--latest",),
    ("--latest", "--city", "Amsterdam"),
    ("--latest", "--since", "2025-06-01T11:59:58"),
    ("--limit", "5"),  # ties: three sensors share every timestamp, so TOP 5 cuts through one
    ("--limit", "7", "--city", "Amsterdam"),
    ("--limit", "1000"),
    ("--sensor-id", "Amsterdam_AM01", "--limit", "3"),
    ("--since", "2025-06-01T11:59:57", "--limit", "100"),
]


@pytest.mark.parametrize("question", QUESTIONS, ids=[" ".join(q) for q in QUESTIONS])
def test_cosmos_answers_as_the_lake_does(runner, shipped, question):
    from_lake = json_of(run(runner, shipped, "--source", "lake", "--json", *question))
    from_cosmos = json_of(run(runner, shipped, "--source", "cosmos", "--json", *question))
    assert from_cosmos == from_lake
    assert from_cosmos["rows"] or "--since" in question or HOSTILE in question


def test_list_matches_the_lake_but_names_the_container(runner, shipped):
    from_lake = json_of(run(runner, shipped, "--source", "lake", "--list", "--json"))["rows"]
    from_cosmos = json_of(run(runner, shipped, "--source", "cosmos", "--list", "--json"))["rows"]
    assert [{k: v for k, v in r.items() if k != "path"} for r in from_cosmos] == [{k: v for k, v in r.items() if k != "path"} for r in from_lake]
    assert {r["path"] for r in from_cosmos} == {f"cosmos {yaml.safe_load((shipped.root / 'sensor-manager.yaml').read_text())['uploader']['sinks']['cosmos']['database_name']}/SensorReadings"}


def test_all_reports_the_container(runner, shipped):
    report = json_of(run(runner, shipped, "--source", "cosmos", "--all", "--json"))["databases"]
    assert len(report) == 1 and report[0]["rows"] == 60 and report[0]["partition_key"] == ["/city"]
    assert report[0]["sensor_ids"] == ["Amsterdam_AM00", "Amsterdam_AM01", "Sao_Paulo_SA00"]
    assert {"id", "sensor_id", "timestamp", "seq", "city"} <= set(report[0]["schema"])
    assert not {"_rid", "_self", "_etag"} & set(report[0]["schema"])


def test_csv_and_table(runner, shipped):
    csv_out = run(runner, shipped, "--source", "cosmos", "--latest", "--format", "csv")
    assert csv_out.exit_code == 0 and csv_out.stdout.splitlines()[0] == "timestamp,sensor_id,location,temperature,humidity," \
                                                                     "pressure,vibration,voltage,status_code,anomaly_flag,anomaly_type,seq"
    assert len(csv_out.stdout.splitlines()) == 4
    table = run(runner, shipped, "--source", "cosmos", "--count")
    assert table.exit_code == 0 and "60" in table.stdout


def test_sql_with_parameters(runner, shipped):
    rows = json_of(run(runner, shipped, "--source", "cosmos", "--json", "--sql",
                       "SELECT c.sensor_id, c.seq FROM c WHERE c.city = @city AND c.seq >= @from ORDER BY c.seq",
                       "--param", "city=São Paulo", "--param", "from=19"))["rows"]
    assert rows == [{"sensor_id": "Sao_Paulo_SA00", "seq": 19}, {"sensor_id": "Sao_Paulo_SA00", "seq": 20}]
    counted = json_of(run(runner, shipped, "--source", "cosmos", "--json", "--sql", "-- how many\nSELECT VALUE COUNT(1) FROM c"))
    assert counted == {"schema_version": 1, "columns": ["value"], "rows": [{"value": 60}]}


@pytest.mark.parametrize(("args", "message"), [
    (("--sql", "DELETE FROM c"), "error: --sql: only SELECT queries are sent to Cosmos DB; got 'DELETE'"),
    (("--sql", "  "), "error: --sql: only SELECT queries are sent to Cosmos DB; got 'an empty statement'"),
    (("--sql", "SELECT * FROM c GROUP BY c.city"), "error: SQL refused: "),
    (("--sql", "SELECT * FROM c", "--param", "nope"), "error: --param 'nope': write NAME=VALUE"),
    (("--sql", "SELECT * FROM c", "--param", "a=1", "--param", "@a=2"), "error: --param: @a is given twice"),
    (("--count", "--param", "a=1"), "error: --param binds parameters of a Cosmos SQL query"),
    (("--sql", "SELECT * FROM c", "--timeout", "0"), "error: --timeout 0.0: must be a positive number of seconds"),
])
def test_bad_input_exits_2_and_changes_nothing(runner, shipped, tree_listing, args, message):
    before = tree_listing(shipped.root)
    result = run(runner, shipped, "--source", "cosmos", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert tree_listing(shipped.root) == before


def test_without_an_endpoint_it_says_which_key(runner, fleet):
    result = run(runner, fleet, "--source", "cosmos", "--count")
    assert result.exit_code == 2
    assert "error: --source cosmos: uploader.sinks.cosmos.endpoint is not set (or COSMOS_ENDPOINT, or --cosmos-config)" in result.stderr


@pytest.mark.parametrize(("endpoint", "key", "message"), [
    ("cosmos.example", None, "'cosmos.example' is not an https:// URL"),
    ("https://127.0.0.1:8081/", "not base64!", "is not a base64 master key"),
])
def test_bad_endpoint_or_key_exits_2(runner, fleet, cosmos_server, endpoint, key, message):
    write_config(fleet.root, {"endpoint": endpoint, "key": key or cosmos_server.key})
    result = run(runner, fleet, "--source", "cosmos", "--count")
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output
    assert "not base64!" not in result.output


def test_a_closed_port_is_one_line_exit_1(runner, fleet, cosmos_server):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    write_config(fleet.root, cosmos_settings(cosmos_server, "SensorData") | {"endpoint": f"https://127.0.0.1:{port}/"})
    result = run(runner, fleet, "--source", "cosmos", "--count")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.startswith(f"error: https://127.0.0.1:{port}/: cannot reach Cosmos DB (") and "diagnostics" in result.stderr


def test_a_missing_container_is_one_line_exit_1(runner, fleet, cosmos_server):
    write_config(fleet.root, cosmos_settings(cosmos_server, f"absent-{uuid.uuid4().hex[:8]}"))
    result = run(runner, fleet, "--source", "cosmos", "--latest")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "no such database or container (404)" in result.stderr


def test_cosmos_config_flag_points_query_at_the_container(runner, shipped, tmp_path):
    settings = yaml.safe_load((shipped.root / "sensor-manager.yaml").read_text())["uploader"]["sinks"]["cosmos"]
    seed = tmp_path / "cosmos-config.yaml"
    seed.write_text(yaml.safe_dump({"cosmos": {k: v for k, v in settings.items() if k not in ("verify_tls", "enabled")}}))
    (tmp_path / "empty.yaml").write_text("{}\n")  # not the project's file, which names the container itself
    result = runner.invoke(app, ["query", "--config", str(tmp_path / "empty.yaml"), "--project-dir", str(shipped.root),
                                 "--source", "cosmos", "--count", "--json", "--cosmos-config", str(seed)],
                           env={"COSMOS_VERIFY_TLS": "false"})
    assert json_of(result)["rows"] == [{"count": 60}]
