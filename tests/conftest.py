"""Shared fixtures: a throwaway project directory and the CLI runner."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """An empty project directory; tests pass it as --project-dir."""
    path = tmp_path / "project"
    path.mkdir()
    return path


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _wait_until(predicate, timeout: float = 30.0, what: str = "condition", interval: float = 0.1):
    """Poll until `predicate()` is truthy and return it; fail after `timeout` s (a bound on waiting, not a speed assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture(scope="session")
def wait_until():
    """The one polling helper: wait_until(predicate, timeout=30.0, what="condition", interval=0.1)."""
    return _wait_until


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's own config, colours or cloud credentials."""
    for name in list(os.environ):
        if name.startswith(("SENSOR_MANAGER_", "COSMOS_", "S3_", "AWS_")) or name in {
            "SENSORS_PER_CITY", "MAX_CITIES", "READINGS_PER_SECOND", "ANOMALY_PROBABILITY", "UPLOAD_INTERVAL",
        }:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")


def _tree_listing(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(root)), p.stat().st_size if p.is_file() else -1) for p in root.rglob("*"))


@pytest.fixture
def tree_listing():
    """`tree_listing(root)`: relative paths and sizes; compare before/after to prove nothing changed."""
    return _tree_listing


@pytest.fixture(scope="session")
def cosmos_server():
    """A real Cosmos-protocol server on 127.0.0.1 (`.endpoint`, `.key`), one per session, in memory.

    Skips when Node.js/npm are missing, except under CI=true, where that fails (as the Docker tests do)."""
    from tests import cosmos_server as cosmos

    try:
        server = cosmos.start()
    except cosmos.Unavailable as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{error} (CI=true makes that a failure)")
        pytest.skip(str(error))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cosmos_proxy(cosmos_server):
    """A fault proxy in front of the session's Cosmos server (`.endpoint`, `.faults`): no faults until set."""
    from tests.cosmos_proxy import FaultProxy

    proxy = FaultProxy(cosmos_server.endpoint)
    try:
        yield proxy
    finally:
        proxy.close()
