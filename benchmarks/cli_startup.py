#!/usr/bin/env python3
"""Warm start-up of `./sensor_manager.py --help` against a bare `python -c pass` (target: under 0.5 s).

Both are measured in this run, as the median of several warm runs (one untimed run first, which also
lets the launcher finish a first-run install). Prints value/baseline/ratio, or with --json one object
{"name", "value", "baseline", "ratio", "unit"}.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from timing import median_command_seconds

REPO = Path(__file__).resolve().parent.parent
LAUNCHER = REPO / "sensor_manager.py"
VENV_PYTHON = REPO / ".venv" / "bin" / "python"



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--via", choices=("launcher", "venv"), default="launcher",
                        help="launcher: ./sensor_manager.py as a user runs it (system python, re-exec); venv: .venv/bin/python sensor_manager.py")
    args = parser.parse_args()
    python = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable
    command = [str(LAUNCHER), "--help"] if args.via == "launcher" else [python, str(LAUNCHER), "--help"]
    value = median_command_seconds(command, args.runs)
    baseline = median_command_seconds([python, "-c", "pass"], args.runs)
    result = {"name": f"cli_startup_help_{args.via}", "value": round(value, 4), "baseline": round(baseline, 4),
              "ratio": round(value / baseline, 1), "unit": "s"}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['name']}: {value:.3f} s (baseline python -c pass: {baseline:.3f} s, ratio {result['ratio']}x; target < 0.5 s)")


if __name__ == "__main__":
    main()
