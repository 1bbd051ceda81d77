"""`query --source cosmos` as real processes: the documented exit code within the timeout, every time, one
`error:` line for bad input, nothing alarming on stderr (the SDK's threads and sockets at interpreter exit)."""
from __future__ import annotations

import json
import socket
import uuid

import pytest
import yaml

from tests.observe.conftest import build_fleet
from tests.observe.test_cosmos_query import cosmos_settings, fill_container, lake_rows, write_config

from .conftest import Run, run_cli

RUNS = 3
TIMEOUT = 120


@pytest.fixture(scope="module")
def cosmos_project(tmp_path_factory, cosmos_server):
    fleet = build_fleet(tmp_path_factory.mktemp("cosmos-process") / "project", {"Amsterdam": 2, "São Paulo": 1}, rows=20)
    for city in ("Amsterdam", "Sao_Paulo"):
        fleet.upload(city)
    database = f"proc-{uuid.uuid4().hex[:8]}"
    fill_container(cosmos_server, database, lake_rows(fleet))
    write_config(fleet.root, cosmos_settings(cosmos_server, database))
    return fleet.root


COMMANDS = [
    ("count", ["--count", "--json"], 0),
    ("latest", ["--latest", "--format", "csv"], 0),
    ("limit", ["--limit", "5", "--city", "Amsterdam"], 0),
    ("all", ["--all", "--json"], 0),
    ("sql", ["--sql", "SELECT VALUE COUNT(1) FROM c WHERE c.seq > @seq", "--param", "seq=10", "--json"], 0),
    ("sql-write", ["--sql", "DELETE FROM c"], 2),
    ("sql-bad", ["--sql", "SELECT * FROM c GROUP BY c.city"], 2),
]


def failures(results: list[Run], expected: int) -> list[str]:
    return [f"exit {r.code if r.code is not None else 'timeout'}{f' ({r.crash})' if r.crash else ''}: {r.stderr.strip()[-300:]}"
            for r in results if r.code != expected or r.crash or (expected and len(r.stderr.strip().splitlines()) != 1)]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "argv", "expected"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_cosmos_query_exits_cleanly_every_time(cosmos_project, name, argv, expected):
    results = [run_cli("query", "--project-dir", str(cosmos_project), "--source", "cosmos", *argv, timeout=TIMEOUT) for _ in range(RUNS)]
    problems = failures(results, expected)
    assert not problems, f"{name}: {len(problems)} of {RUNS} runs failed:\n" + "\n".join(problems)
    if expected == 0:
        assert all(r.stdout.strip() for r in results)


@pytest.mark.slow
def test_count_as_a_process_equals_the_lake(cosmos_project):
    counts = [json.loads(run_cli("query", "--project-dir", str(cosmos_project), "--source", source, "--count", "--json",
                                 timeout=TIMEOUT).stdout)["rows"] for source in ("edge", "lake", "cosmos")]
    assert counts == [[{"count": 60}]] * 3


@pytest.mark.slow
def test_an_unreachable_endpoint_exits_1_with_one_line(cosmos_project, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = yaml.safe_load((cosmos_project / "sensor-manager.yaml").read_text())
    config["uploader"]["sinks"]["cosmos"]["endpoint"] = f"https://127.0.0.1:{port}/"
    other = tmp_path / "unreachable.yaml"
    other.write_text(yaml.safe_dump(config))
    done = run_cli("query", "--project-dir", str(cosmos_project), "--config", str(other), "--source", "cosmos", "--count", timeout=TIMEOUT)
    assert done.code == 1 and not done.crash and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith(f"error: https://127.0.0.1:{port}/: cannot reach Cosmos DB")
