"""Real simulator processes: kill -9 never corrupts or loses more than a commit window; SIGTERM is clean."""
from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from fleetcore.statusfiles import read_json_object
from sensor_manager.cli import app
from sensor_manager.simulator.db import open_readonly

COMMIT_WINDOW = 1.0


def _start(project_dir: Path, config: Path, status: Path, rate: str = "200") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "sensor_manager", "--project-dir", str(project_dir), "simulate", "--config", str(config),
         "--cities", "Berlin", "--rate", rate, "--status-file", str(status), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _wait_running(process: subprocess.Popen, status: Path, wait_until, min_rows: int = 1) -> dict:
    def running_entry() -> dict | None:
        assert process.poll() is None, process.stderr.read().decode()
        document = read_json_object(status)
        if document and document.get("pid") == process.pid and document["state"] == "running":
            entry = next(iter(document["sensors"].values()))
            if entry["rows_written"] >= min_rows:
                return entry
        return None

    return wait_until(running_entry, 60, "the simulator to start", interval=0.05)


def _last_timestamp(db_path: str) -> float:
    row = open_readonly(db_path).execute("SELECT timestamp FROM sensor_readings ORDER BY id DESC LIMIT 1").fetchone()
    return datetime.fromisoformat(row[0]).timestamp()


@pytest.mark.slow
def test_kill_9_mid_write_twenty_times(project_dir, write_config, wait_until):
    config = write_config(simulation={"commit_interval_seconds": COMMIT_WINDOW, "status_interval_seconds": 0.2})
    status = project_dir / "status.json"
    rng = random.Random(3)
    seqs_seen = 0
    for _ in range(20):
        process = _start(project_dir, config, status)
        entry = _wait_running(process, status, wait_until)
        time.sleep(rng.uniform(0.0, 1.5))
        kill_time = time.time()
        process.send_signal(signal.SIGKILL)
        process.wait()
        conn = open_readonly(entry["db_path"])
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert kill_time - _last_timestamp(entry["db_path"]) <= COMMIT_WINDOW + 0.5
        seqs = [r[0] for r in conn.execute("SELECT seq FROM sensor_readings ORDER BY id")]
        assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) > seqs_seen
        seqs_seen = len(seqs)
        conn.close()


def test_sigterm_flushes_checkpoints_and_exits_zero(project_dir, write_config, wait_until):
    config = write_config(simulation={"status_interval_seconds": 0.2})
    status = project_dir / "status.json"
    process = _start(project_dir, config, status, rate="50")
    entry = _wait_running(process, status, wait_until, min_rows=20)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    document = json.loads(status.read_text())
    assert document["state"] == "stopped"
    final = next(iter(document["sensors"].values()))
    wal = Path(entry["db_path"] + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # TRUNCATE checkpoint on the way out
    count = open_readonly(entry["db_path"]).execute("SELECT max(seq) FROM sensor_readings").fetchone()[0]
    assert count == final["rows_written"] == final["seq"]


def test_second_writer_exits_2_naming_the_holder(runner, project_dir, write_config, wait_until):
    config = write_config(simulation={"status_interval_seconds": 0.2})
    status = project_dir / "status.json"
    process = _start(project_dir, config, status, rate="5")
    try:
        _wait_running(process, status, wait_until)
        result = runner.invoke(app, ["--project-dir", str(project_dir), "simulate", "--config", str(config),
                                     "--cities", "Berlin", "--duration", "0.01", "--status-file", str(status)])
        assert result.exit_code == 2
        assert f"(pid {process.pid})" in result.output and "Traceback" not in result.output
        assert json.loads(status.read_text())["pid"] == process.pid  # the holder's status file is left alone
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
