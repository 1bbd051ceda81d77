"""`query --sql` stops on Ctrl-C (SIGINT) and after `--timeout` (finding 6), as a real process.

Python runs signal handlers only on the main thread and only between bytecodes, so a query blocking
the main thread inside DuckDB ignored Ctrl-C until it finished.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import psutil
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from .conftest import CRASH_MARKS, LAUNCHER, REPO, run_cli

ENDLESS = "SELECT sum(a.range * b.range) FROM range(1000000) a, range(1000000) b"  # 10^12 products


@pytest.fixture
def lake_project(tmp_path):
    write_deltalake(str(tmp_path / "lake" / "sensor_readings"), pa.table({"city": ["Amsterdam"], "seq": [1]}), partition_by=["city"])
    return tmp_path


def _busy_in_query(process: psutil.Process, cpu_seconds: float = 4.0, timeout: float = 120) -> None:
    """Wait until the process has spent more CPU than starting up takes: it is inside the query."""
    deadline = time.monotonic() + timeout
    while sum(process.cpu_times()[:2]) < cpu_seconds:
        assert process.is_running() and time.monotonic() < deadline, "the query never started"
        time.sleep(0.2)


def _terminal_sigint() -> None:
    """Ctrl-C as on a terminal: a test runner started in the background passes SIGINT on ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_interrupts_a_running_query(lake_project):
    child = subprocess.Popen([sys.executable, str(LAUNCHER), "query", "--project-dir", str(lake_project), "--sql", ENDLESS],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                             preexec_fn=_terminal_sigint)
    try:
        _busy_in_query(psutil.Process(child.pid))
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=20)
    finally:
        child.kill()
    assert child.returncode == 130, stderr
    assert not any(mark in stderr for mark in CRASH_MARKS), stderr


@pytest.mark.slow
def test_timeout_stops_a_running_query(lake_project):
    started = time.monotonic()
    run = run_cli("query", "--project-dir", str(lake_project), "--sql", ENDLESS, "--timeout", "3", timeout=120)
    assert run.code == 1 and run.crash is None, run.stderr
    assert run.stderr.strip() == "error: --sql: the query ran longer than 3 s and was stopped; narrow it or raise --timeout"
    assert time.monotonic() - started < 110


def test_timeout_must_be_positive(lake_project):
    run = run_cli("query", "--project-dir", str(lake_project), "--sql", "SELECT 1", "--timeout", "0")
    assert run.code == 2 and run.stderr.strip() == "error: --timeout 0.0: must be a positive number of seconds"
