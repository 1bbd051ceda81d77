"""One small running fleet (local runtime) for the process-level suite, shared by every test in it.

The lake is made of many small commits (a tiny delta batch size over a backfill), as a fleet's lake is
after a while: an early-stopped scan over many files is what used to crash or hang at exit.
A second, unsupervised project ships into the same lake with `upload --once` while the fleet's own
uploaders keep writing to it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "sensor_manager.py"
CRASH_MARKS = ("terminate called", "Segmentation fault", "Traceback", "core dumped", "Fatal Python error")

FLEET_CONFIG = """\
project: process-suite
sensors_per_city: 2
runtime: local
simulation:
  readings_per_second: 2
cities:
  - name: Amsterdam
  - name: Berlin
uploader:
  interval_seconds: 10
  sinks:
    delta:
      batch_size: 50
"""

SIDE_CONFIG = FLEET_CONFIG.replace("process-suite", "process-side").replace("  - name: Berlin\n", "")


@dataclass(frozen=True)
class Run:
    args: tuple[str, ...]
    code: int | None  # None: killed by the timeout
    stdout: str
    stderr: str

    @property
    def crash(self) -> str | None:
        return next((mark for mark in CRASH_MARKS if mark in self.stderr), None)


def run_cli(*args: str, timeout: float = 60, env: dict[str, str] | None = None) -> Run:
    """The CLI as a user runs it: a fresh interpreter through the launcher, so exit handlers run."""
    try:
        done = subprocess.run([sys.executable, str(LAUNCHER), *args], capture_output=True, text=True, timeout=timeout,
                              cwd=REPO, env={**_clean_environment(), "NO_COLOR": "1", **(env or {})})
    except subprocess.TimeoutExpired as exc:
        return Run(args, None, _text(exc.stdout), _text(exc.stderr))
    return Run(args, done.returncode, done.stdout, done.stderr)


def _clean_environment() -> dict[str, str]:
    """The session fixture runs before the per-test environment isolation: drop the developer's settings here."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("SENSOR_MANAGER_", "UPLOAD_", "READINGS_", "SENSORS_"))}


def _text(data) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


@dataclass(frozen=True)
class ProcessFleet:
    root: Path
    side: Path  # an unsupervised project whose `upload --once` ships into the fleet's lake

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    def lake_files(self) -> int:
        return sum(1 for _ in (self.lake / "sensor_readings").rglob("*.parquet"))


def _check(run: Run) -> Run:
    assert run.code == 0 and not run.crash, f"{' '.join(run.args)} -> {run.code}\n{run.stdout}\n{run.stderr}"
    return run


@pytest.fixture(scope="session")
def process_fleet(tmp_path_factory) -> ProcessFleet:
    root = tmp_path_factory.mktemp("process-fleet")
    side = tmp_path_factory.mktemp("process-side")
    (root / "sensor-manager.yaml").write_text(FLEET_CONFIG)
    (side / "sensor-manager.yaml").write_text(SIDE_CONFIG)
    for project in (root, side):
        _check(run_cli("simulate", "--project-dir", str(project), "--backfill", "400s", "--duration", "0.5", timeout=180))
    _check(run_cli("start", "--project-dir", str(root), "--wait", "--no-diagnostics", timeout=180))
    fleet = ProcessFleet(root, side)
    try:
        _wait_for_lake(fleet)
        yield fleet
    finally:
        run_cli("stop", "--project-dir", str(root), timeout=120)


def _wait_for_lake(fleet: ProcessFleet, files: int = 50, timeout: float = 120) -> None:
    """Until the uploaders have shipped the backfill as many small files."""
    deadline = time.monotonic() + timeout
    while fleet.lake_files() < files:
        assert time.monotonic() < deadline, f"the fleet's uploaders wrote only {fleet.lake_files()} lake files"
        time.sleep(1)


def status_json(fleet: ProcessFleet) -> dict:
    return json.loads(_check(run_cli("status", "--project-dir", str(fleet.root), "--json")).stdout)
