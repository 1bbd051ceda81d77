#!/usr/bin/env python3
"""One dashboard tick over a 1,000-sensor project (targets: under 0.1 s server-side, under 100 kB on the wire).

The project is the one `monitor_refresh.py` builds (a plan, 1,000 edge DBs, status files, a lake).
value = median seconds of a tick as the server makes it after the first refresh: `Monitor.refresh()`,
the page's fold of the snapshot (`feed.tick`) and its JSON; baseline = the same refresh printed as
`monitor --json` does (every sensor's row), in the same run. The SSE payload size is printed beside
the full document's. Prints value/baseline/ratio, or with --json one object {"name", "value",
"baseline", "ratio", "unit", "payload_bytes", "baseline_payload_bytes"}.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from monitor_refresh import build_project, project_arguments
from sensor_manager.dashboard import feed
from sensor_manager.layout import ProjectLayout
from sensor_manager.observe.monitor import Monitor
from timing import median_seconds


def main() -> None:
    args = project_arguments(__doc__.splitlines()[0])
    with tempfile.TemporaryDirectory(prefix="dashboard-bench-") as tmp:
        root = Path(tmp)
        plan = build_project(root, args.cities, args.sensors_per_city, args.rows)
        watch = Monitor(ProjectLayout.at(root), plan)
        watch.refresh()  # the server's first tick, before it answers any request

        def tick() -> str:
            return json.dumps(feed.tick(watch.refresh()), separators=(",", ":"))

        def monitor_json() -> str:
            return json.dumps(watch.refresh().to_json(), separators=(",", ":"))

        value = median_seconds(tick, args.runs)
        baseline = median_seconds(monitor_json, args.runs)
        payload, full = len(tick().encode()), len(monitor_json().encode())
        watch.close()
    sensors = args.cities * args.sensors_per_city
    result = {"name": f"dashboard_tick_{sensors}_sensors", "value": round(value, 4), "baseline": round(baseline, 4),
              "ratio": round(value / baseline, 3), "unit": "s", "payload_bytes": payload, "baseline_payload_bytes": full}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['name']}: {value:.3f} s per tick (baseline monitor --json refresh: {baseline:.3f} s, ratio {result['ratio']}x; "
              f"target < 0.1 s); SSE payload {payload / 1000:.1f} kB (full monitor --json: {full / 1000:.1f} kB; target < 100 kB)")


if __name__ == "__main__":
    main()
