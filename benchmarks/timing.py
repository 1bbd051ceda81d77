"""Timing shared by the benchmark scripts: the median of warm runs, in-process or of a command."""
from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def median_seconds(step: Callable[[], object], runs: int) -> float:
    """Median wall time of `step` over `runs` runs, after one untimed warm-up run."""
    step()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def median_command_seconds(command: list[str], runs: int, cwd: Path | None = None) -> float:
    """`median_seconds` of running `command` to completion (output discarded; a failure raises)."""
    return median_seconds(lambda: subprocess.run(command, capture_output=True, check=True, cwd=cwd), runs)
