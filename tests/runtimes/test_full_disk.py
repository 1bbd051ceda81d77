"""The supervisor on a disk that fills up (issue 10, finding 3): a real tmpfs, stand-in programs.

It must go on supervising (not die on the first failed write), report the disk as the fault, and the
services must come back on their own once space is freed.
"""
from __future__ import annotations

import os
import subprocess

import pytest

from sensor_manager.runtimes.logfiles import read_lines

from .conftest import write_spec

pytestmark = pytest.mark.slow

# Appends to a file of its own; a full disk makes it fail, as a sensor whose DB cannot grow does.
WRITER = (
    "import sys, time\n"
    "while True:\n"
    "    try:\n"
    "        with open('writer.out', 'a') as f:\n"
    "            f.write('x' * 4096)\n"
    "    except OSError as exc:\n"
    "        print('cannot write:', exc, flush=True)\n"
    "        sys.exit(1)\n"
    "    print('wrote', flush=True)\n"
    "    time.sleep(0.2)\n"
)
# Logs ~40 kB/s: its log needs new blocks within a second of the disk filling up.
CHATTER = "import time\nwhile True:\n    print('chatter ' * 50, flush=True)\n    time.sleep(0.01)\n"
POLICY = {"backoff_initial_seconds": 0.05, "backoff_max_seconds": 0.5, "quick_exit_seconds": 1, "stop_grace_seconds": 3}


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"a tmpfs mount needs root with CAP_SYS_ADMIN: {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=True)


def _fill(path) -> None:
    """Take every free byte: big writes, then smaller ones down to one byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (65536, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)


def test_a_full_disk_is_reported_and_services_resume_when_space_returns(small_disk, wait_until, services_state):
    root = small_disk / "project"
    runtime = write_spec(root, {"chatter": CHATTER, "writer": WRITER}, POLICY)
    try:
        runtime.start(None, None, ["chatter", "writer"])
        wait_until(lambda: services_state(runtime).get("writer", {}).get("pid"), what="the writer to run")
        supervisor = runtime.supervisor()
        filler = small_disk / "filler"
        _fill(filler)

        fault = wait_until(runtime.fault, timeout=60, what="the full disk to be reported")
        assert "is full" in fault.problem and "free space on that disk" in fault.remedy
        assert runtime.supervisor() == supervisor  # still the same, live supervisor

        filler.unlink()
        wait_until(lambda: runtime.fault() is None, timeout=60, what="the fault to clear")
        first = services_state(runtime)["writer"]
        wait_until(lambda: (entry := services_state(runtime)["writer"])["state"] == "running" and entry["pid"], what="the writer to run again")
        assert first["restarts"] >= 1  # it failed while the disk was full and was restarted
        assert runtime.supervisor() == supervisor
        lines = [line.text for line in read_lines(runtime.layout.logs / "supervisor.log")]
        assert any("Supervisor state could not be written; retrying. error=" in text for text in lines)
        assert "Supervisor state written again." in lines
        wait_until(lambda: any("lines were lost" in line.text for line in read_lines(runtime.log_path("chatter"))),
                   what="the chatter's log to record its lost lines")
    finally:
        (small_disk / "filler").unlink(missing_ok=True)
        runtime.stop(None)
    assert not runtime.is_running()
