"""Render docs/monitor.svg: the real `monitor` dashboard of a running project, exported by rich.

Start a small fleet, let it run a minute, then take the picture and stop it:

    ./sensor_manager.py --project-dir /tmp/demo start --cities Amsterdam,Berlin,Tokyo --sensors-per-city 3 --wait
    .venv/bin/python docs/tools/monitor_screenshot.py --project-dir /tmp/demo
    ./sensor_manager.py --project-dir /tmp/demo stop

It refreshes the monitor as `monitor` does (every --interval seconds, so rates and sparklines are
real) and records the last frame with the dashboard's own renderables.
"""
from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

from rich.console import Console

from sensor_manager.layout import ProjectLayout
from sensor_manager.observe import dashboard
from sensor_manager.observe.monitor import Monitor
from sensor_manager.plan import load_plan

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "monitor.svg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project-dir", type=Path, required=True)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--refreshes", type=int, default=6, help="refreshes before the picture (fills the sparklines)")
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--width", type=int, default=140)
    args = parser.parse_args()

    layout = ProjectLayout.at(args.project_dir)
    watch = Monitor(layout, load_plan(layout))
    try:
        for _ in range(args.refreshes - 1):
            watch.refresh()
            time.sleep(args.interval)
        frame = dashboard.render(watch.refresh())
    finally:
        watch.close()
    console = Console(record=True, width=args.width, file=io.StringIO(), force_terminal=True, color_system="truecolor")
    console.print(frame)
    args.output.write_text(console.export_svg(title="./sensor_manager.py monitor"))
    print(args.output)


if __name__ == "__main__":
    main()
