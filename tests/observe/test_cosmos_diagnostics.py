"""`diagnostics` for the Cosmos sink's account: endpoint (DNS, port, TLS), key, database, container, partition key.

Against the real Cosmos-protocol test server, except the refused key: that server accepts any key, so a
401 comes from a loopback HTTP server that refuses every request (as Cosmos does for a wrong key).
"""
from __future__ import annotations

import json
import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
import yaml

from sensor_manager.observe.diagnostics import COSMOS_DNS_REMEDY, cosmos_account_checks
from uploader.sinks.cosmos import CosmosSinkSettings

from .test_cosmos_query import fill_container


def settings_for(server, database: str, **extra) -> CosmosSinkSettings:
    return CosmosSinkSettings(**{"endpoint": server.endpoint, "key": server.key, "database_name": database,
                                 "verify_tls": False, **extra})


def by_name(checks) -> dict:
    return {c.name: c for c in checks}


@pytest.fixture(scope="module")
def good_database(cosmos_server) -> str:
    database = f"diag-{uuid.uuid4().hex[:8]}"
    fill_container(cosmos_server, database, [])
    return database


def test_a_good_account_passes_every_check(cosmos_server, good_database):
    checks = by_name(cosmos_account_checks(settings_for(cosmos_server, good_database)))
    assert [c.status for c in checks.values()] == ["pass"] * 5
    assert "certificate not verified (loopback, verify_tls: false)" in checks["cosmos endpoint"].detail
    assert checks["cosmos partition key"].detail == "/city, as configured"


def test_a_name_that_does_not_resolve_gives_the_dns_advice():
    checks = cosmos_account_checks(CosmosSinkSettings(endpoint="https://no-such-account.invalid:443/", key="QUJD"))
    assert checks[0].status == "fail" and checks[0].detail.startswith("no-such-account.invalid: the name does not resolve")
    assert checks[0].hint == COSMOS_DNS_REMEDY and "docker run --rm busybox nslookup" in checks[0].hint
    assert [c.status for c in checks[1:]] == ["skip"] * 4


def test_a_closed_port_fails_the_endpoint_check():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    check = cosmos_account_checks(CosmosSinkSettings(endpoint=f"https://127.0.0.1:{port}/", key="QUJD"))[0]
    assert check.status == "fail" and f"127.0.0.1:{port} (127.0.0.1): no connection" in check.detail
    assert "443 for Azure" in check.hint


@pytest.fixture(scope="module")
def server_on_127_0_0_2():
    """The test server on another loopback address: the SDK verifies certificates everywhere but localhost and 127.0.0.1."""
    import shutil
    import subprocess

    from tests import cosmos_server as cosmos

    process = subprocess.Popen([shutil.which("node") or "node", str(cosmos.install()), "--host", "127.0.0.2", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = process.stdout.readline() if process.stdout else ""
    match = cosmos._READY.search(line)
    try:
        if not match:
            pytest.skip(f"cosmosdb-server does not listen on 127.0.0.2: {line.strip()}")
        yield f"https://127.0.0.2:{match.group(1)}/"
    finally:
        process.kill()
        process.wait()


def test_an_untrusted_certificate_fails_with_the_tls_remedy(cosmos_server, server_on_127_0_0_2):
    check = cosmos_account_checks(CosmosSinkSettings(endpoint=server_on_127_0_0_2, key=cosmos_server.key))[0]
    assert check.status == "fail" and "certificate not trusted" in check.detail
    assert "verify_tls: false" in check.hint and "loopback" in check.hint


def test_on_127_0_0_1_the_check_says_the_sdk_skips_verification(cosmos_server, good_database):
    check = cosmos_account_checks(settings_for(cosmos_server, good_database, verify_tls=True))[0]
    assert check.status == "pass" and "the SDK never verifies localhost or 127.0.0.1" in check.detail


@pytest.fixture
def refusing_server():
    """Answers every request 401 with Cosmos DB's error body for a wrong key."""

    class Refuse(BaseHTTPRequestHandler):
        def _refuse(self) -> None:
            body = json.dumps({"code": "Unauthorized", "message": "The input authorization token can't serve the request."}).encode()
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = _refuse

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


def test_a_refused_key_fails_with_where_to_find_the_right_one(refusing_server, cosmos_server):
    checks = cosmos_account_checks(CosmosSinkSettings(endpoint=refusing_server, key=cosmos_server.key))
    assert [c.status for c in checks] == ["pass", "fail", "skip", "skip", "skip"]
    assert checks[1].detail == f"{refusing_server} refused the key (401)" and "Keys page" in checks[1].hint


def test_a_missing_database_fails_without_create_if_missing(cosmos_server):
    absent = f"absent-{uuid.uuid4().hex[:8]}"
    checks = by_name(cosmos_account_checks(settings_for(cosmos_server, absent, create_if_missing=False)))
    assert checks["cosmos database"].status == "fail"
    assert checks["cosmos database"].detail == f"{absent} does not exist and create_if_missing is false"
    assert "set uploader.sinks.cosmos.create_if_missing: true" in checks["cosmos database"].hint
    assert checks["cosmos container"].status == "skip"


def test_a_missing_database_is_a_warning_when_the_sink_creates_it(cosmos_server):
    checks = by_name(cosmos_account_checks(settings_for(cosmos_server, f"absent-{uuid.uuid4().hex[:8]}")))
    assert checks["cosmos database"].status == "warn" and "the sink creates it at its first upload" in checks["cosmos database"].detail


def test_a_missing_container_fails_without_create_if_missing(cosmos_server, good_database):
    checks = by_name(cosmos_account_checks(settings_for(cosmos_server, good_database, container_name="Other", create_if_missing=False)))
    assert checks["cosmos container"].status == "fail" and "with partition key /city" in checks["cosmos container"].hint
    assert checks["cosmos partition key"].status == "skip"


def test_a_container_with_another_partition_key_fails_clearly(cosmos_server):
    database = f"diag-{uuid.uuid4().hex[:8]}"
    fill_container(cosmos_server, database, [], partition_key="/sensor_id")
    check = by_name(cosmos_account_checks(settings_for(cosmos_server, database)))["cosmos partition key"]
    assert check.status == "fail"
    assert check.detail == "SensorReadings is partitioned by /sensor_id; uploader.sinks.cosmos.partition_key is /city"
    assert check.hint.startswith("set uploader.sinks.cosmos.partition_key: /sensor_id or choose a new container_name")


@pytest.mark.parametrize(("partition_key", "create", "failing"), [
    ("/sensor_id", True, "cosmos partition key"),  # the container exists with another partition key
    ("/city", False, "cosmos database"),  # a database that does not exist, and the sink may not create it
])
def test_diagnostics_fails_the_check_with_its_remedy(runner, project_dir, cosmos_server, partition_key, create, failing):
    from sensor_manager.cli import app

    database = f"diag-{uuid.uuid4().hex[:8]}"
    if create:
        fill_container(cosmos_server, database, [], partition_key=partition_key)
        database_name = database
    else:
        database_name = f"absent-{uuid.uuid4().hex[:8]}"
    (project_dir / "sensor-manager.yaml").write_text(yaml.safe_dump({"uploader": {"sinks": {"cosmos": {
        "enabled": True, "endpoint": cosmos_server.endpoint, "key": cosmos_server.key, "verify_tls": False,
        "database_name": database_name, "create_if_missing": create}}}}))
    result = runner.invoke(app, ["diagnostics", "--project-dir", str(project_dir), "--json"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    checks = by_name(SimpleNamespace(**c) for c in json.loads(result.stdout)["checks"])
    assert checks[failing].status == "fail" and checks[failing].hint
    assert checks["cosmos endpoint"].status == "pass" and checks["cosmos key"].status == "pass"
    assert "checks failed: " in result.stderr and failing in result.stderr.splitlines()[-1]
