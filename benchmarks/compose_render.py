#!/usr/bin/env python3
"""Compose render for a 1,000-sensor plan (target: under 1 s), against a baseline in the same run.

value = median seconds to render the stack from the plan and dump it as YAML (what `compose` does,
minus the engine lookup of the image tag); baseline = json.dumps of the same plan, the cheapest
possible serialisation of the same input. Prints value/baseline/ratio, or with --json one object
{"name", "value", "baseline", "ratio", "unit", "sensors", "bytes"}.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sensor_manager.config import load_config  # noqa: E402
from sensor_manager.layout import ProjectLayout  # noqa: E402
from sensor_manager.plan import build_plan  # noqa: E402
from sensor_manager.runtimes.compose_render import StackInputs, dump_stack, render_stack  # noqa: E402
from sensor_manager.runtimes.compose_settings import DockerSettings  # noqa: E402
from timing import median_seconds  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--cities", type=int, default=20)
    parser.add_argument("--sensors-per-city", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    config = load_config(None, "/nonexistent-benchmark-project",
                         {"max_cities": args.cities, "sensors_per_city": args.sensors_per_city})
    plan = build_plan(config)
    inputs = StackInputs(ProjectLayout(Path("/srv/benchmark")), "sm-benchmark-000000", "sensor-manager:0.1.0-bench", "1000:1000",
                         DockerSettings())
    text = dump_stack(render_stack(plan, config, inputs))
    value = median_seconds(lambda: dump_stack(render_stack(plan, config, inputs)), args.runs)
    baseline = median_seconds(lambda: json.dumps(plan.to_dict()), args.runs)
    result = {"name": "compose_render", "value": round(value, 4), "baseline": round(baseline, 4),
              "ratio": round(value / baseline, 1), "unit": "s", "sensors": len(plan.sensors), "bytes": len(text)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"compose_render: {value:.3f} s for {len(plan.sensors)} sensors, {len(text) // 1024} KiB "
              f"(baseline json.dumps of the plan: {baseline:.3f} s, ratio {result['ratio']}x; target < 1 s)")


if __name__ == "__main__":
    main()
