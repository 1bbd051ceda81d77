"""A live local fleet, the dashboard as a real process, and Debian's chromium driven by Playwright.

Chromium comes from the distribution (`tests/run` installs it as root); Playwright only drives it through
`executable_path`, since `playwright install` cannot download browsers here. Without a browser the
browser tests skip, and under CI=true they fail instead.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("SM_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(os.environ.get("SM_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
FLEET_CONFIG = """project: dash-test
sensors_per_city: 2
runtime: local
simulation:
  readings_per_second: 5
anomalies:
  probability: 0.2
cities:
  - name: Amsterdam
  - name: New York
uploader:
  interval_seconds: 1
"""


def cli(project: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The CLI as a real process (no developer config or environment leaks in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSOR_MANAGER_")}
    return subprocess.run([sys.executable, "-m", "sensor_manager", *args, "--project-dir", str(project)],
                          capture_output=True, text=True, timeout=timeout, env={**env, "NO_COLOR": "1"})


def monitor(project: Path) -> dict:
    result = cli(project, "monitor", "--once", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


class Dashboard:
    """`dashboard` as a process; its URL is the first line it prints."""

    def __init__(self, project: Path, *args: str):
        env = {k: v for k, v in os.environ.items() if not k.startswith("SENSOR_MANAGER_")}
        self.process = subprocess.Popen([sys.executable, "-m", "sensor_manager", "dashboard", "--project-dir", str(project), "--port", "0", *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.url = self.process.stdout.readline().strip()
        if not self.url:
            self.stop()
            pytest.fail(f"dashboard printed no URL: {self.process.stderr.read()}")

    def stop(self) -> str:
        self.process.terminate()
        try:
            _, stderr = self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, stderr = self.process.communicate()
        return stderr


@pytest.fixture(scope="module")
def live_fleet(tmp_path_factory, wait_until) -> Path:
    project = tmp_path_factory.mktemp("dashboard") / "project"
    project.mkdir()
    (project / "sensor-manager.yaml").write_text(FLEET_CONFIG)
    started = cli(project, "start", "--wait", "--no-diagnostics")
    assert started.returncode == 0, started.stderr
    try:
        wait_until(lambda: all(c["lake_rows"] > 0 for c in monitor(project)["cities"]), 60, "a first upload in every city")
        yield project
    finally:
        cli(project, "stop")


@pytest.fixture(scope="module")
def chromium_path() -> Path:
    missing = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "the playwright package is not installed (pip install -e .[test])"
    if missing is None and not CHROMIUM.exists():
        missing = f"{CHROMIUM} not found (apt-get install chromium; tests/run does it as root)"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests need a browser and CI=true: {missing}")
        pytest.skip(missing)
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def dash(wait_until):
    """The helpers above, for the test modules (conftest is not importable under --import-mode=importlib)."""
    from types import SimpleNamespace

    return SimpleNamespace(cli=cli, monitor=monitor, wait_until=wait_until, Dashboard=Dashboard, artifacts=ARTIFACTS)
