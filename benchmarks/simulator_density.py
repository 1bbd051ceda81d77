"""Sensor density: CPU % of one core and RSS while hosting many sensors at 1 reading/s each.

Each process hosts at most `sensors_per_process(RLIMIT_NOFILE)` sensors (four descriptors each, 256
spare); beyond that the fleet is sharded across processes, as the runtimes do. CPU is measured over
a steady window after start-up; RSS is summed over the processes. Target: 1,000 sensors in one
process under 20 % of a core.

    .venv/bin/python benchmarks/simulator_density.py [--sensors 100,1000,10000] [--seconds 30] [--json]

`--json` prints one object for the 1,000-sensor case (value: CPU %, baseline: the 20 % target) with
every size under "sizes".
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sensor_manager.simulator.limits import raise_open_files_limit, sensors_per_process  # noqa: E402
from sensor_manager.simulator.runner import RunOptions, SensorSpec  # noqa: E402
from sensor_manager.simulator.settings import (  # noqa: E402
    AnomalySettings,
    DeviceSettings,
    NormalParameters,
    SimulationSettings,
)
from simulator_throughput import IDENTITY  # noqa: E402

TARGET_CPU_PERCENT = 20.0


def _host(root: str, first: int, count: int, seconds: float, ready) -> None:
    specs = [
        SensorSpec(replace(IDENTITY, sensor_id=f"Berlin_D{i:06d}", seed=i), Path(root) / "Berlin" / f"D{i:06d}")
        for i in range(first, first + count)
    ]
    options = RunOptions(
        simulation=SimulationSettings(readings_per_second=1.0, run_time_seconds=seconds),
        normal_parameters=NormalParameters(), anomalies=AnomalySettings(), devices=DeviceSettings(),
    )
    stop = threading.Event()
    from sensor_manager.simulator import runner

    simulation = runner.Simulation(specs, options, stop)
    try:
        simulation.open()
        ready.set()
        simulation.run()
    finally:
        simulation.close()


def measure(sensors: int, seconds: float, warmup: float) -> dict:
    per_process = sensors_per_process(raise_open_files_limit())
    shards = [(first, min(per_process, sensors - first)) for first in range(0, sensors, per_process)]
    with tempfile.TemporaryDirectory() as root:
        context = multiprocessing.get_context("fork")
        events = [context.Event() for _ in shards]
        started = time.monotonic()
        processes = [context.Process(target=_host, args=(root, first, count, warmup + seconds + 5, ready))
                     for (first, count), ready in zip(shards, events, strict=True)]
        for p in processes:
            p.start()
        for ready, p in zip(events, processes, strict=True):
            while not ready.wait(0.5):
                if not p.is_alive():
                    raise SystemExit(f"a shard exited during start-up (exit code {p.exitcode})")
        startup = time.monotonic() - started
        handles = [psutil.Process(p.pid) for p in processes]
        time.sleep(warmup)
        cpu0 = sum(h.cpu_times().user + h.cpu_times().system for h in handles)
        t0 = time.monotonic()
        time.sleep(seconds)
        cpu1 = sum(h.cpu_times().user + h.cpu_times().system for h in handles)
        window = time.monotonic() - t0
        rss = sum(h.memory_info().rss for h in handles)
        rows_dir = Path(root)
        for p in processes:
            p.join()
        rows = 0
        from sensor_manager.simulator.db import read_high_water

        for db in rows_dir.glob("Berlin/*/sensor_data.db"):
            rows += read_high_water(db).max_seq
    return {
        "sensors": sensors, "processes": len(shards), "startup_seconds": round(startup, 1),
        "cpu_percent": round(100 * (cpu1 - cpu0) / window, 1), "rss_mb": round(rss / 2**20, 1),
        "rss_kb_per_sensor": round(rss / 1024 / sensors, 1), "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", default="100,1000,10000")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = {}
    for n in (int(x) for x in args.sensors.split(",")):
        sizes[n] = measure(n, args.seconds, args.warmup)
        if not args.json:
            print(json.dumps(sizes[n]), flush=True)
    key = 1000 if 1000 in sizes else max(sizes)
    value = sizes[key]["cpu_percent"]
    result = {"name": "simulator_density", "value": value, "baseline": TARGET_CPU_PERCENT,
              "ratio": round(value / TARGET_CPU_PERCENT, 3), "unit": f"cpu % of one core at {key} sensors",
              "sizes": list(sizes.values())}
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
