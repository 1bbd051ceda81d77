"""set, reload, rollout, inject: change the running fleet without a restart → live/fleet.py."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from fleetcore.errors import ProcessFailedError
from sensor_manager.cli import app
from sensor_manager.cli.options import JsonOpt, session
from sensor_manager.cli.output import info, print_json, results

TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds to wait until every running service reports the change.")]
DEFAULT_TIMEOUT = 10.0  # = live.fleet.DEFAULT_TIMEOUT_SECONDS; the library is imported per command to keep startup fast

rollout_app = typer.Typer(help="Firmware rollouts: change sensors' firmware in the plan while they run.", no_args_is_help=True)
app.add_typer(rollout_app, name="rollout")
inject_app = typer.Typer(help="Start events on running sensors now (for demos and tests).", no_args_is_help=True)
app.add_typer(inject_app, name="inject")


def _report_applied(applied, quiet: bool, what: str) -> None:
    if not applied.running:
        info(f"{what} {applied.config}; the fleet is not running: it applies at the next `start`.", quiet)
        return
    if applied.pending:
        raise ProcessFailedError(f"{what} {applied.config}, but not applied by: " + ", ".join(map(str, applied.pending)))
    info(f"{what} {applied.config}; every running service applied it.", quiet)


@app.command("set")
def set_(
    ctx: typer.Context,
    assignments: Annotated[list[str], typer.Argument(help="KEY=VALUE pairs; a value is read as YAML.", show_default=False)],
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
) -> None:
    """Change config keys in the config file (comments kept) and wait until every running service applied them.

    Example: ./sensor_manager.py set simulation.readings_per_second=50 anomalies.probability=0.1
    """
    from sensor_manager.live.fleet import set_keys

    s = session(ctx)
    _report_applied(set_keys(s.layout, s.config_path, assignments, timeout), s.quiet, "Changed")


@app.command()
def reload(ctx: typer.Context, timeout: TimeoutOpt = DEFAULT_TIMEOUT) -> None:
    """Apply the edited config file to the running fleet now (the local runtime also does this by itself).

    Example: ./sensor_manager.py reload
    """
    from sensor_manager.live.fleet import reload_now

    s = session(ctx)
    _report_applied(reload_now(s.layout, s.config_path, timeout), s.quiet, "Reloaded")


def _report_rollout(result, quiet: bool, json_output: bool) -> None:
    from sensor_manager.live.rollout import rollout_summary

    if json_output:
        print_json({"schema_version": 1, **result.record})
    else:
        results().print(rollout_summary(result.record))
    if result.waiting_for_start:
        info(f"{len(result.waiting_for_start)} sensors are not running; they switch when they start.", quiet)
    if result.not_switched:
        raise ProcessFailedError(f"{result.record['id']}: running sensors that did not switch in time: "
                                 + ", ".join(result.not_switched[:10]) + ("…" if len(result.not_switched) > 10 else ""))


@rollout_app.command("firmware")
def rollout_firmware(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="The firmware version to roll out, e.g. 1.6.0.", show_default=False)],
    cities: Annotated[Optional[str], typer.Option("--cities", help="Only sensors of these comma-separated cities.", show_default=False)] = None,
    percent: Annotated[float, typer.Option("--percent", help="Share of the chosen sensors, picked deterministically from the seed.")] = 100.0,
    sensor_id: Annotated[Optional[list[str]], typer.Option("--sensor-id", help="Only this sensor (repeatable).", show_default=False)] = None,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    json_output: JsonOpt = False,
) -> None:
    """Give chosen sensors new firmware now; recorded in the plan with the seq at which each switched.

    Example: ./sensor_manager.py rollout firmware --to 1.6.0 --percent 20
    """
    from sensor_manager.live.fleet import rollout_firmware as roll

    s = session(ctx, json=json_output)
    city_list = [c.strip() for c in cities.split(",") if c.strip()] if cities else None
    _report_rollout(roll(s.layout, to, cities=city_list, percent=percent, sensor_ids=sensor_id, timeout_seconds=timeout),
                    s.quiet, s.json)


@rollout_app.command("undo")
def rollout_undo(ctx: typer.Context, timeout: TimeoutOpt = DEFAULT_TIMEOUT, json_output: JsonOpt = False) -> None:
    """Give the sensors of the last rollout their firmware from before it.

    Example: ./sensor_manager.py rollout undo
    """
    from sensor_manager.live.fleet import rollout_undo as undo

    s = session(ctx, json=json_output)
    _report_rollout(undo(s.layout, timeout), s.quiet, s.json)


@rollout_app.command("status")
def rollout_status(ctx: typer.Context, json_output: JsonOpt = False) -> None:
    """List the plan's rollouts: which sensors switched, at which seq and time.

    Example: ./sensor_manager.py rollout status --json
    """
    from sensor_manager.live.fleet import rollout_status as status
    from sensor_manager.live.rollout import rollout_summary

    s = session(ctx, json=json_output)
    records = status(s.layout)
    if s.json:
        print_json({"schema_version": 1, "rollouts": records})
        return
    if not records:
        info("No rollouts yet.", s.quiet)
    for record in records:
        results().print(rollout_summary(record))


@inject_app.command("anomaly")
def inject_anomaly(
    ctx: typer.Context,
    kind: Annotated[str, typer.Option("--type", help="spike | trend | pattern | missing | noise.", show_default=False)],
    sensor_id: Annotated[Optional[list[str]], typer.Option("--sensor-id", help="This sensor (repeatable).", show_default=False)] = None,
    city: Annotated[Optional[list[str]], typer.Option("--city", help="Every sensor of this city (repeatable).", show_default=False)] = None,
    duration: Annotated[str, typer.Option("--duration", help="How long the episode lasts, e.g. 30s, 2m.")] = "30s",
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    json_output: JsonOpt = False,
) -> None:
    """Start an anomaly episode now on running sensors, labelled like any other (anomaly_flag, anomaly_type).

    Example: ./sensor_manager.py inject anomaly --city Berlin --type spike --duration 20s
    """
    from sensor_manager.durations import parse_duration
    from sensor_manager.live.fleet import inject_anomaly as inject

    s = session(ctx, json=json_output)
    result = inject(s.layout, kind=kind, duration_seconds=parse_duration(duration, "--duration"), sensor_ids=sensor_id,
                    cities=city, timeout_seconds=timeout)
    request = result.injection
    if s.json:
        print_json({"schema_version": 1, "id": request.id, "type": request.type, "sensor_ids": list(request.sensor_ids),
                    "duration_seconds": request.duration_seconds, "requested_at_epoch": request.requested_at_epoch,
                    "not_applied_by": result.pending})
    else:
        results().print(f"Injected {request.type} for {request.duration_seconds:g} s on {len(request.sensor_ids)} sensors (id {request.id}).")
    if result.pending:
        raise ProcessFailedError(f"injection {request.id} not applied in time by: {', '.join(result.pending)}")
