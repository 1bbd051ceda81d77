#!/usr/bin/env python3
"""`start --wait` on the docker runtime for 2 cities x 2 sensors and 5 x 5 (image already built).

value = seconds from start (render, chown, compose up) until every container is healthy, with the
shipped healthcheck settings (interval 10 s: the first check runs 10 s after start) and with
--fast-checks (interval 2 s); baseline = one `docker run --rm --network none <base> true` in the same run.
Each fleet is stopped and its project directory removed afterwards. --json: one object per fleet size.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from sensor_manager.config import load_config  # noqa: E402
from sensor_manager.layout import ProjectLayout  # noqa: E402
from sensor_manager.plan import resolve_plan  # noqa: E402
from sensor_manager.runtimes.compose import ComposeRuntime  # noqa: E402
from sensor_manager.runtimes.compose_settings import DockerSettings, resolve_base_image  # noqa: E402
from sensor_manager.runtimes.engine import docker_client  # noqa: E402


def one_fleet(cities: int, sensors: int, settings: DockerSettings) -> tuple[float, list[str]]:
    root = Path(tempfile.mkdtemp(prefix="sm-start-bench-"))
    try:
        (root / "sensor-manager.yaml").write_text(yaml.safe_dump({
            "project": "bench", "sensors_per_city": sensors, "max_cities": cities,
            "simulation": {"readings_per_second": 1}, "uploader": {"interval_seconds": 5},
        }))
        layout = ProjectLayout.at(root)
        config = load_config(None, root)
        runtime = ComposeRuntime(layout, settings=settings, progress=lambda line: None)
        plan = resolve_plan(config, layout, persist=True)
        runtime.ensure_image(config)
        started = time.perf_counter()
        try:
            runtime.start(plan, config)
            unhealthy = runtime.wait_healthy(None, 300)
            return time.perf_counter() - started, unhealthy
        finally:
            runtime.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--sizes", default="2x2,5x5")
    parser.add_argument("--fast-checks", action="store_true", help="healthcheck interval 2 s instead of the shipped 10 s")
    parser.add_argument("--wheelhouse", help="wheel cache for a build, if the image is missing")
    args = parser.parse_args()
    settings = DockerSettings(wheelhouse=args.wheelhouse, **({"healthcheck_interval_seconds": 2} if args.fast_checks else {}))
    client = docker_client()
    t0 = time.perf_counter()
    client.containers.run(resolve_base_image(settings), ["true"], network_mode="none", remove=True)
    baseline = time.perf_counter() - t0
    for size in args.sizes.split(","):
        cities, sensors = (int(part) for part in size.split("x"))
        seconds, unhealthy = one_fleet(cities, sensors, settings)
        result = {"name": f"docker_start_wait_{size}", "value": round(seconds, 1), "baseline": round(baseline, 2),
                  "ratio": round(seconds / baseline, 1), "unit": "s", "containers": cities * (sensors + 1),
                  "healthcheck_interval": settings.healthcheck_interval_seconds, "unhealthy": unhealthy}
        if args.json:
            print(json.dumps(result))
        else:
            print(f"start --wait {size}: {seconds:.1f} s for {cities * (sensors + 1)} containers "
                  f"(healthcheck interval {settings.healthcheck_interval_seconds} s; baseline docker run: {baseline:.2f} s)"
                  + (f"; NOT healthy: {unhealthy}" if unhealthy else ""))


if __name__ == "__main__":
    main()
