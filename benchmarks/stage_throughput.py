#!/usr/bin/env python3
"""Stage throughput: rows/s of each uploader stage draining a 1M-row backlog into Delta, against `raw` in the same run.

value    = rows/s of the `aggregated` stage (1-minute windows per sensor, its state saved after every
           commit) draining a fresh 1M-row DB (target: ≥ 0.5× raw);
baseline = rows/s of the `raw` stage on the same DB (the uploader as it ships by default).
Also: rows/s of `schematized` and `sanitized` and each stage's ratio to raw. Every stage starts from
an empty lake and state directory. Prints a summary, or with --json one object
{"name", "value", "baseline", "ratio", "unit", ...extra figures}.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from uploader.settings import UploaderSettings  # noqa: E402
from uploader_throughput import build_db, run_uploader  # noqa: E402

STAGES = ("raw", "schematized", "sanitized", "aggregated")


def drain_seconds(data: Path, work: Path, stage: str) -> float:
    """Seconds for the uploader running `stage` to drain everything under `data` into a fresh lake."""
    return run_uploader(data, work, UploaderSettings.model_validate({"stage": stage}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stage-bench-"))
    rates: dict[str, float] = {}
    try:
        data = work / "data"
        build_db(data / "Berlin" / "AB12" / "sensor_data.db", args.rows)
        for stage in STAGES:
            rates[stage] = args.rows / drain_seconds(data, work / stage, stage)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    raw = rates["raw"]
    result = {"name": "stage_throughput", "value": round(rates["aggregated"]), "baseline": round(raw),
              "ratio": round(rates["aggregated"] / raw, 2), "unit": "rows/s", "rows": args.rows,
              "rows_per_s": {stage: round(rate) for stage, rate in rates.items()},
              "ratio_to_raw": {stage: round(rate / raw, 2) for stage, rate in rates.items()}}
    if args.json:
        print(json.dumps(result))
        return
    for stage, rate in rates.items():
        print(f"{stage:>11}: {rate:,.0f} rows/s ({rate / raw:.2f}x raw)")
    print(f"aggregated / raw: {rates['aggregated'] / raw:.2f} (target ≥ 0.5)")


if __name__ == "__main__":
    main()
