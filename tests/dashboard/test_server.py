"""The dashboard server as a real process: bad input, the token beyond loopback, 404, and nothing open by accident."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest


def status(url: str, headers: dict | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def simulated(project_dir, dash):
    (project_dir / "sensor-manager.yaml").write_text("project: dash-server\nsensors_per_city: 1\ncities:\n  - name: Amsterdam\n")
    result = dash.cli(project_dir, "simulate", "--backfill", "10s", "--duration", "0.5")
    assert result.returncode == 0, result.stderr
    return project_dir


def test_port_in_use_exits_1_with_the_remedy(simulated, tree_listing):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    before = tree_listing(simulated)
    try:
        result = subprocess.run([sys.executable, "-m", "sensor_manager", "dashboard", "--project-dir", str(simulated), "--port", str(port)],
                                capture_output=True, text=True, timeout=60)
    finally:
        taken.close()
    assert result.returncode == 1
    assert result.stderr == (f"error: --port {port}: 127.0.0.1:{port} is already in use; stop what listens there, "
                             "or pick another port (--port 0 takes a free one)\n")
    assert result.stdout == "" and tree_listing(simulated) == before


def test_loopback_serves_the_page_and_answers_404_and_only_loopback_names(simulated, dash):
    server = dash.Dashboard(simulated)
    try:
        assert urlsplit(server.url).hostname == "127.0.0.1" and "token" not in server.url
        assert status(server.url) == 200
        assert status(server.url + "static/vendor/uPlot.iife.min.js") == 200
        assert status(server.url + "no/such/page") == 404
        assert status(server.url + "api/sensors/Nowhere_X/readings") == 404
        assert status(server.url, {"Host": "attacker.example"}) == 403  # a DNS-rebinding page gets nothing
    finally:
        server.stop()


def test_non_loopback_bind_without_a_token_generates_one_and_refuses_requests_without_it(simulated, dash):
    server = dash.Dashboard(simulated, "--host", "0.0.0.0")
    try:
        token = server.url.split("?token=", 1)[1]
        assert len(token) >= 20
        base = server.url.split("?", 1)[0]
        assert status(base) == 401
        assert status(base + "metrics") == 401
        assert status(base + "metrics", {"Authorization": "Bearer wrong"}) == 401
        assert status(base + "metrics", {"Authorization": f"Bearer {token}"}) == 200
        assert status(server.url) == 200
        assert status(base + "api/sensors", {"Cookie": f"sm_dashboard_token={token}"}) == 200
    finally:
        stderr = server.stop()
    assert "generated token" in stderr and "Traceback" not in stderr


def test_an_empty_token_is_a_usage_error(simulated, dash):
    result = dash.cli(simulated, "dashboard", "--host", "0.0.0.0", "--token", "")
    assert result.returncode == 2 and result.stderr == "error: --token: must not be empty\n"


def first_tick(url: str) -> dict:
    with urllib.request.urlopen(url + "events", timeout=30) as stream:
        for line in stream:
            if line.startswith(b"data: "):
                return json.loads(line[6:])
    raise AssertionError("the event stream ended without a tick")


def test_a_stopped_project_streams_the_monitor_snapshot_folded_per_sensor(simulated, dash):
    for path in (simulated / "state" / "status").glob("*.json"):  # the simulator stopped an hour ago
        document = json.loads(path.read_text())
        document["updated_at_epoch"] -= 3600
        path.write_text(json.dumps(document))
    watched = dash.monitor(simulated)
    server = dash.Dashboard(simulated)
    try:
        tick = first_tick(server.url)
    finally:
        server.stop()
    assert "sensors" not in tick and tick["sensor_states"] == "s" * len(watched["sensors"]) and tick["anomalies"] == {}
    assert tick["totals"] == watched["totals"] and tick["totals"]["sensors_running"] == 0
    for key in ("project", "runtime", "fleet_epoch"):
        assert tick[key] == watched[key]
    moving = ("lag_seconds", "rate_history")  # an age, and a history as long as the server's refreshes so far
    for shown, city in zip(tick["cities"], watched["cities"], strict=True):
        assert {k: v for k, v in shown.items() if k not in moving} == {k: v for k, v in city.items() if k not in moving}
        assert shown["rate_history"][-1] == city["rate_history"][-1] == 0


def test_ctrl_c_with_a_page_connected_ends_cleanly(simulated, dash):
    server = dash.Dashboard(simulated)
    stream = urllib.request.urlopen(server.url + "events", timeout=30)
    try:
        assert stream.readline().startswith(b"event: tick")
        server.process.send_signal(signal.SIGINT)
        _, stderr = server.process.communicate(timeout=30)
    finally:
        stream.close()
    assert server.process.returncode == 0
    assert "ERROR" not in stderr and "Traceback" not in stderr, stderr


def test_an_address_this_machine_does_not_have_is_a_usage_error(simulated, dash):
    result = dash.cli(simulated, "dashboard", "--host", "192.0.2.1", "--token", "secret", "--port", "0")
    assert result.returncode == 2
    assert result.stderr == "error: --host 192.0.2.1 --port 0: cannot listen there: Cannot assign requested address\n"


def test_sigterm_ends_the_dashboard_with_exit_0(simulated, dash):
    server = dash.Dashboard(simulated)
    assert status(server.url) == 200
    stderr = server.stop()
    assert server.process.returncode == 0 and "Traceback" not in stderr
