"""Closed-loop rate: achieved/target readings per second at 1, 30, 100 and 1000 readings/s.

Each rate runs in its own process for its window (120 s at 1/s, 30 s otherwise, as the issue asks;
`--scale` shortens them for a quick look). Achieved = (rows - 1) / (last - first timestamp) from
the DB; `rows_per_wall_second` also divides the rows by the wall-clock window, which shows whether
the loop kept up rather than only stamping evenly. Baseline: the target (1.0). Target: within 1 %.

    .venv/bin/python benchmarks/simulator_rate.py [--scale 1.0] [--json]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sensor_manager.simulator.db import open_readonly  # noqa: E402
from sensor_manager.simulator.runner import RunOptions, SensorSpec, run_simulation  # noqa: E402
from sensor_manager.simulator.settings import (  # noqa: E402
    AnomalySettings,
    DeviceSettings,
    NormalParameters,
    SimulationSettings,
)
from simulator_throughput import IDENTITY  # noqa: E402

WINDOWS = {1.0: 120.0, 30.0: 30.0, 100.0: 30.0, 1000.0: 30.0}


def _run(root: str, rate: float, seconds: float) -> None:
    options = RunOptions(
        simulation=SimulationSettings(readings_per_second=rate, run_time_seconds=seconds),
        normal_parameters=NormalParameters(), anomalies=AnomalySettings(missing_data_mode="null"),
        devices=DeviceSettings(),
    )
    run_simulation([SensorSpec(replace(IDENTITY, seed=int(rate)), Path(root))], options)


def measure_rate(rate: float, seconds: float) -> dict:
    """Run one sensor at `rate` for `seconds` in a child process; achieved rates from its DB."""
    with tempfile.TemporaryDirectory() as root:
        process = multiprocessing.get_context("fork").Process(target=_run, args=(root, rate, seconds))
        process.start()
        process.join()
        conn = open_readonly(Path(root) / "sensor_data.db")
        rows, first, last = conn.execute("SELECT count(*), min(timestamp), max(timestamp) FROM sensor_readings").fetchone()
        conn.close()
    span = datetime.fromisoformat(last).timestamp() - datetime.fromisoformat(first).timestamp()
    achieved = (rows - 1) / span if span > 0 else 0.0
    return {"target": rate, "seconds": seconds, "rows": rows, "achieved": round(achieved, 4),
            "ratio": round(achieved / rate, 4), "rows_per_wall_second": round(rows / seconds, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every window (e.g. 0.1 for a quick look)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with ThreadPoolExecutor(len(WINDOWS)) as pool:  # each thread waits on its own child process
        results = list(pool.map(lambda item: measure_rate(item[0], item[1] * args.scale), WINDOWS.items()))
    worst = max(results, key=lambda r: abs(r["ratio"] - 1))
    summary = {"name": "simulator_rate", "value": worst["ratio"], "baseline": 1.0, "ratio": worst["ratio"],
               "unit": "achieved/target (worst of 1, 30, 100, 1000 readings/s)", "rates": results}
    if args.json:
        print(json.dumps(summary))
    else:
        for r in results:
            print(json.dumps(r))
        print(f"worst achieved/target: {worst['ratio']} at {worst['target']:g}/s")


if __name__ == "__main__":
    main()
