"""`simulate`: run sensors in the foreground, each writing its own SQLite DB (→ sensor_manager/simulator)."""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from fleetcore.errors import UsageError
from fleetcore.signals import stop_on_signals
from sensor_manager.cli import app
from sensor_manager.cli.options import (
    AnomalyProbabilityOpt,
    CitiesOpt,
    JsonOpt,
    MaxCitiesOpt,
    RateOpt,
    SeedOpt,
    SensorsPerCityOpt,
    session,
)
from sensor_manager.cli.output import info, print_json, results
from sensor_manager.durations import parse_duration


def _resolve(path: Path | None, root: Path) -> Path | None:
    if path is None:
        return None
    path = path.expanduser()
    return path if path.is_absolute() else root / path


@app.command()
def simulate(
    ctx: typer.Context,
    sensor_id: Annotated[Optional[list[str]], typer.Option("--sensor-id", help="Host only this sensor (repeatable).", show_default=False)] = None,
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="Root of the sensor folders (default: <project-dir>/data; relative paths are under the project dir).", show_default=False)] = None,
    status_file: Annotated[Optional[Path], typer.Option("--status-file", help="Status file (default: state/status/sensor-<city>.json for one city, else sensor-all.json).", show_default=False)] = None,
    check: Annotated[bool, typer.Option("--check", help="Exit 0 if the status file is fresh and healthy, else 1 (a healthcheck).")] = False,
    identity: Annotated[Optional[Path], typer.Option("--identity", help="Run the one sensor described by this identity file (seed nested or flat legacy format).", show_default=False)] = None,
    backfill: Annotated[Optional[str], typer.Option("--backfill", help="First write this much history ending now (e.g. 90s, 2h, 3d).", show_default=False)] = None,
    live_dir: Annotated[Optional[Path], typer.Option("--live-dir", help="Apply live changes from this directory (settings, anomaly injections, the plan's identities), polled; the runtimes pass it.", show_default=False)] = None,
    duration: Annotated[Optional[str], typer.Option("--duration", help="How long to run in real time, e.g. 60, 90s, 1h30m (0: until stopped; default: simulation.run_time_seconds).", show_default=False)] = None,
    cities: CitiesOpt = None,
    max_cities: MaxCitiesOpt = None,
    sensors_per_city: SensorsPerCityOpt = None,
    rate: RateOpt = None,
    anomaly_probability: AnomalyProbabilityOpt = None,
    seed: SeedOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Run sensors in the foreground, each writing data/<City>/<CODE>/sensor_data.db.

    Example: ./sensor_manager.py simulate --cities Berlin --rate 10 --backfill 2h --duration 60
    """
    from sensor_manager.simulator.hosting import HostingRequest, check_health, plan_hosting
    from sensor_manager.simulator.sharding import run_sharded

    opts = session(ctx, json=json_output, cities=cities, max_cities=max_cities,
                   sensors_per_city=sensors_per_city, rate=rate, anomaly_probability=anomaly_probability, seed=seed)
    layout = opts.layout
    request = HostingRequest(
        sensor_ids=tuple(sensor_id or ()),
        data_dir=_resolve(data_dir, layout.root),
        status_file=_resolve(status_file, layout.root),
        identity_file=_resolve(identity, Path.cwd()),
        backfill_seconds=0.0 if backfill is None else parse_duration(backfill, "--backfill"),
        duration_seconds=None if duration is None else parse_duration(duration, "--duration"),
        live_dir=_resolve(live_dir, layout.root),
    )
    config_model = opts.load_config()
    if check:
        healthy, why = check_health(config_model, layout, request)
        if not opts.quiet:
            sys.stderr.write(why + "\n")
        raise typer.Exit(0 if healthy else 1)
    specs, options = plan_hosting(config_model, layout, request)
    if not specs:
        raise UsageError("no sensors selected; check --cities / --sensor-id against `plan`")
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING if opts.quiet else logging.INFO,
                        format="%(message)s")
    info(f"Simulating {len(specs)} sensor(s) at {options.rate:g} readings/s; status: {options.status_file}", opts.quiet)
    with stop_on_signals() as stop:
        summary = run_sharded(specs, options, stop)
    document = {
        "schema_version": 1,
        "sensors": summary.sensors,
        "rows_written": summary.rows_written,
        "skipped_readings": summary.skipped_readings,
        "errors": summary.errors,
        "seconds": round(summary.seconds, 3),
        "stopped_by_signal": summary.stopped_by_signal,
    }
    if opts.json:
        print_json(document)
    else:
        results().print(f"Wrote {summary.rows_written} readings for {summary.sensors} sensor(s) in {summary.seconds:.1f} s.")
