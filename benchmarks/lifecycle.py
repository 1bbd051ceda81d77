#!/usr/bin/env python3
"""Lifecycle speed: `start` to first reading and to first lake row; `status` at 1,000 sensors (target < 1 s).

Cases, each against a baseline measured in the same run:
- first-reading: `start` (local runtime, 2 cities x 2 sensors, 20 readings/s) until a first row is in
  an edge DB; baseline: the same four processes (`simulate` and `python -m uploader --continuous` per
  city) started directly, until their first row.
- first-lake-row: the same `start` until a first row is in the Delta table; baseline: the same four
  processes started directly, until their first lake row.
- status: `status --json` on a running project of 1,000 sensors (100 cities x 10; the supervisor runs
  one stand-in process per service, each with a fresh status file); baseline: `--version` of the same CLI.

Prints value/baseline/ratio per case, or with --json one object {"name", "value", "baseline", "ratio", "unit"}
for the chosen --case (default: status).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import median_command_seconds

REPO = Path(__file__).resolve().parent.parent
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else sys.executable
SMALL_CONFIG = """\
project: bench-lifecycle
seed: 11
sensors_per_city: 2
runtime: local
simulation:
  readings_per_second: 20
cities:
  - name: Amsterdam
  - name: Berlin
uploader:
  interval_seconds: 1
"""


def cli(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "sensor_manager", "--project-dir", str(project), *args],
                          capture_output=True, text=True, check=check, cwd=REPO)


def has_reading(project: Path) -> bool:
    for db in (project / "data").glob("*/*/sensor_data.db"):
        try:
            conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=1)
            try:
                if conn.execute("SELECT 1 FROM readings LIMIT 1").fetchone():
                    return True
            finally:
                conn.close()
        except sqlite3.Error:
            continue
    return False


def has_lake_row(project: Path) -> bool:
    log = project / "lake" / "sensor_readings" / "_delta_log"
    if not log.is_dir():
        return False
    from deltalake import DeltaTable

    try:
        return DeltaTable(str(log.parent)).to_pyarrow_table(columns=["seq"]).num_rows > 0
    except Exception:  # noqa: BLE001 - the table may be mid-creation
        return False


def seconds_until(predicate, started: float, timeout: float = 180.0) -> float:
    while time.perf_counter() - started < timeout:
        if predicate():
            return time.perf_counter() - started
        time.sleep(0.02)
    raise SystemExit(f"timed out after {timeout} s")


def fresh_project(root: Path, name: str, config: str) -> Path:
    project = root / name
    project.mkdir()
    (project / "sensor-manager.yaml").write_text(config)
    return project


def measure_start(root: Path) -> tuple[float, float]:
    project = fresh_project(root, "start", SMALL_CONFIG)
    started = time.perf_counter()
    cli(project, "start")
    try:
        reading = seconds_until(lambda: has_reading(project), started)
        lake = seconds_until(lambda: has_lake_row(project), started)
    finally:
        cli(project, "stop", check=False)
    return reading, lake


def measure_direct(root: Path) -> tuple[float, float]:
    """The same work without the lifecycle: simulator and uploader started by hand in the foreground."""
    project = fresh_project(root, "direct", SMALL_CONFIG)
    config = str(project / "sensor-manager.yaml")
    processes = []
    started = time.perf_counter()
    for city in ("Amsterdam", "Berlin"):  # the same four processes `start` runs
        (project / "data" / city).mkdir(parents=True)
        processes.append(subprocess.Popen(
            [PYTHON, "-m", "sensor_manager", "--project-dir", str(project), "--config", config, "simulate", "--cities", city],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO))
        processes.append(subprocess.Popen(
            [PYTHON, "-m", "uploader", "--sqlite", str(project / "data" / city), "--project-dir", str(project),
             "--continuous", "--interval", "1", "--config", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO))
    try:
        reading = seconds_until(lambda: has_reading(project), started)
        lake = seconds_until(lambda: has_lake_row(project), started)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
    return reading, lake


def big_config(cities: int, per_city: int) -> str:
    lines = ["project: bench-status", "seed: 5", f"sensors_per_city: {per_city}", "runtime: local", "cities:"]
    for index in range(cities):
        lat, lon = -60 + (index * 1.1) % 120, -170 + (index * 3.3) % 340
        lines.append(f"  - {{name: Benchtown {index:03d}, latitude: {lat:.2f}, longitude: {lon:.2f}, timezone: UTC}}")
    return "\n".join(lines) + "\n"


def running_big_project(root: Path, cities: int, per_city: int) -> Path:
    """A project of cities x per_city sensors whose supervisor runs `sleep` for every service, each with a status file."""
    sys.path.insert(0, str(REPO))
    from fleetcore.statusfiles import read_json_object, write_status
    from sensor_manager.config import load_config
    from sensor_manager.layout import ProjectLayout
    from sensor_manager.plan import resolve_plan
    from sensor_manager.runtimes import record_runtime
    from sensor_manager.runtimes import supervisor as sv
    from sensor_manager.runtimes.local import LocalRuntime

    project = fresh_project(root, "big", big_config(cities, per_city))
    layout = ProjectLayout.at(project)
    config = load_config(project / "sensor-manager.yaml", project)
    plan = resolve_plan(config, layout, persist=True)
    runtime = LocalRuntime(layout)
    runtime.render(plan, config)
    spec = read_json_object(sv.spec_path(layout))
    if spec is None:
        raise SystemExit(f"render wrote no supervisor spec at {sv.spec_path(layout)}")
    for service in spec["services"]:
        service["argv"] = ["sleep", "3600"]
    sv.write_json_atomic(sv.spec_path(layout), spec)
    runtime.start(plan, config, None)
    record_runtime(layout, "local", "benchmark")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        entries = sv.SupervisorState.read(sv.state_path(layout)).services
        if len(entries) == len(spec["services"]) and all(e.pid for e in entries.values()):
            break
        time.sleep(0.1)
    for service in spec["services"]:
        pid = entries[service["name"]].pid
        body = {"role": service["role"], "name": service["name"], "state": "running",
                "sensors": {sid: {"rows_written": 10, "seq": 10} for sid in service["sensors"]}}
        path = layout.status_dir / f"{service['name']}.json"
        write_status(path, body, interval_seconds=3600)
        document = json.loads(path.read_text())
        document["pid"] = pid
        path.write_text(json.dumps(document))
    return project



def measure_status(root: Path, runs: int) -> tuple[float, float]:
    project = running_big_project(root, cities=100, per_city=10)
    try:
        command = [PYTHON, "-m", "sensor_manager", "--project-dir", str(project), "status", "--json"]
        document = json.loads(subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO).stdout)
        sensors = sum(len(s["sensors"]) for s in document["services"])
        healthy = sum(s["health"] == "healthy" for s in document["services"])
        assert sensors == 1000 and healthy == len(document["services"]), (sensors, healthy)
        value = median_command_seconds(command, runs, cwd=REPO)
        baseline = median_command_seconds([PYTHON, "-m", "sensor_manager", "--version"], runs, cwd=REPO)
        from sensor_manager.layout import ProjectLayout
        from sensor_manager.observe.service_status import collect_status

        timings = []
        for _ in range(runs):
            begun = time.perf_counter()
            collect_status(ProjectLayout.at(project))
            timings.append(time.perf_counter() - begun)
        print(f"(status library call alone, in-process: {statistics.median(timings):.3f} s)", file=sys.stderr)
    finally:
        cli(project, "stop", check=False)
    return value, baseline


def result(name: str, value: float, baseline: float, unit: str = "s") -> dict:
    return {"name": name, "value": round(value, 3), "baseline": round(baseline, 3), "ratio": round(value / baseline, 2), "unit": unit}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object (for --case)")
    parser.add_argument("--case", choices=("status", "first-reading", "first-lake-row"), default=None)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    cases = [args.case or "status"] if args.json else ([args.case] if args.case else ["first-reading", "first-lake-row", "status"])
    root = Path(tempfile.mkdtemp(prefix="bench-lifecycle-"))
    results = []
    try:
        if {"first-reading", "first-lake-row"} & set(cases):
            reading, lake = measure_start(root)
            direct_reading, direct_lake = measure_direct(root)
            if "first-reading" in cases:
                results.append(result("lifecycle_start_to_first_reading", reading, direct_reading))
            if "first-lake-row" in cases:
                results.append(result("lifecycle_start_to_first_lake_row", lake, direct_lake))
        if "status" in cases:
            results.append(result("lifecycle_status_1000_sensors", *measure_status(root, args.runs)))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(results[0]))
        return
    notes = {"lifecycle_start_to_first_reading": "baseline: the same processes run directly",
             "lifecycle_start_to_first_lake_row": "baseline: the same processes run directly",
             "lifecycle_status_1000_sensors": "baseline: CLI --version; target < 1 s"}
    for item in results:
        print(f"{item['name']}: {item['value']:.3f} s ({notes[item['name']]}: {item['baseline']:.3f} s, ratio {item['ratio']}x)")


if __name__ == "__main__":
    os.environ.setdefault("NO_COLOR", "1")
    main()
