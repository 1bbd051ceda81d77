"""start, stop, restart, reset, clean, cleanup, status (ps) and logs → lifecycle.py, observe/, runtimes/."""
from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from fleetcore.errors import ConfirmationRequiredError, ProcessFailedError, UsageError
from sensor_manager.cli import app
from sensor_manager.cli.options import (
    AnomalyProbabilityOpt,
    BaseImageOpt,
    CitiesOpt,
    CosmosConfigOpt,
    DryRunOpt,
    JsonOpt,
    MaxCitiesOpt,
    NoTagOpt,
    ProjectNameOpt,
    RateOpt,
    ReplanOpt,
    SeedOpt,
    SensorsPerCityOpt,
    TagOpt,
    YesOpt,
    session,
)
from sensor_manager.cli.output import info, print_json, print_ndjson, results, warn

DEFAULT_WAIT_TIMEOUT = 120.0  # = lifecycle.DEFAULT_WAIT_TIMEOUT; the library is imported per command to keep startup fast
RuntimeOpt = Annotated[Optional[str], typer.Option("--runtime", help="auto | docker | local | swarm (default: the recorded one, else the config's).", show_default=False)]
TargetsArg = Annotated[Optional[list[str]], typer.Argument(help="Services, cities or sensor ids (default: all).", show_default=False)]
WaitOpt = Annotated[bool, typer.Option("--wait", help="Return when every service is healthy; fail naming those that are not.")]
WaitTimeoutOpt = Annotated[float, typer.Option("--wait-timeout", help="Seconds --wait waits.")]
# Overrides that shape the fleet: given to `start`, they must agree with the stored plan (or --replan).
FLEET_SHAPE_KEYS = {"select_cities", "max_cities", "sensors_per_city", "seed"}
NoDiagnosticsOpt = Annotated[bool, typer.Option("--no-diagnostics", help="Skip the summary of where data, lake and logs are.")]


def _confirm(question: str, yes: bool) -> None:
    """Go on with a destructive action: --yes, or a 'y' on a terminal; without either, exit 2 unchanged."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfirmationRequiredError(f"{question}: this needs confirmation; rerun with --yes (no terminal to ask on); nothing changed")
    if not typer.confirm(f"{question}?", default=False, err=True):
        raise ConfirmationRequiredError(f"{question}: not confirmed; nothing changed")


def _note_kept_plan(differences: list[str]) -> None:
    if differences:
        warn(f"the config differs from the stored plan ({'; '.join(differences)}); the stored plan runs (--replan adopts the config's)")


def _print_summary(layout, result) -> None:
    console = results()
    console.print(f"Fleet {result.plan.project} (epoch {result.plan.fleet_epoch}) runs on the {result.runtime} runtime: "
                  f"{len(result.plan.sensors)} sensors in {len(result.plan.cities)} cities.")
    console.print(f"  data:    {layout.data}/<City>/<CODE>/sensor_data.db")
    console.print(f"  lake:    {layout.lake}/sensor_readings (Delta)")
    where = f"{layout.logs}/<service>.log" if result.runtime == "local" else "the engine's container logs"
    console.print(f"  logs:    {where}   (sensor_manager.py logs -f SERVICE)")
    console.print("  monitor: sensor_manager.py status · sensor_manager.py monitor · sensor_manager.py stop")


@app.command()
def start(
    ctx: typer.Context,
    targets: TargetsArg = None,
    wait: WaitOpt = False,
    wait_timeout: WaitTimeoutOpt = DEFAULT_WAIT_TIMEOUT,
    dry_run: DryRunOpt = False,
    no_diagnostics: NoDiagnosticsOpt = False,
    runtime: RuntimeOpt = None,
    cities: CitiesOpt = None,
    max_cities: MaxCitiesOpt = None,
    sensors_per_city: SensorsPerCityOpt = None,
    rate: RateOpt = None,
    anomaly_probability: AnomalyProbabilityOpt = None,
    seed: SeedOpt = None,
    replan: ReplanOpt = False,
    project_name: ProjectNameOpt = None,
    tag: TagOpt = None,
    no_tag: NoTagOpt = False,
    no_rebuild: Annotated[bool, typer.Option("--no-rebuild", help="Docker: never build; a missing image is an error.")] = False,
    base_image: BaseImageOpt = None,
    cosmos_config: CosmosConfigOpt = None,
) -> None:
    """Start the fleet (or the named services) after preflight; never deletes data; fleet flags may grow the stored plan, --replan changes it.

    Example: sensor_manager.py start --wait
    """
    from sensor_manager import lifecycle
    from sensor_manager.runtimes import DockerStartOptions
    from sensor_manager.runtimes.image import ImageOptions

    s = session(ctx, dry_run=dry_run, cities=cities, max_cities=max_cities, sensors_per_city=sensors_per_city,
                rate=rate, anomaly_probability=anomaly_probability, seed=seed, cosmos_config=cosmos_config)
    if tag and no_tag:
        raise UsageError("--tag and --no-tag: give one of them")
    docker_options = DockerStartOptions(project_name=project_name, image=ImageOptions(tag=tag, build=not no_rebuild, base_image=base_image))
    result = lifecycle.start(s.layout, s.load_config(), runtime_name=runtime, targets=targets, dry_run=dry_run,
                             wait=wait, wait_timeout=wait_timeout, docker_options=docker_options, replan=replan,
                             keep_stored=not FLEET_SHAPE_KEYS & s.fleet_overrides.keys())
    _note_kept_plan(result.config_differences)
    info(f"Runtime: {result.runtime} ({result.reason}).", s.quiet)
    if dry_run:
        for check in result.checks:
            info(f"  {'✓' if check.ok else '✗'} {check.name}: {check.detail}", s.quiet)
        results().print(f"Would start {len(result.started)} of {len(result.services)} services: {', '.join(result.started) or 'none (all running)'}")
        return
    if result.already_running:
        info(f"Already running: {len(result.services)} services; nothing started (see `status`).", s.quiet)
    else:
        info(f"Started {len(result.started)} services: {', '.join(result.started)}.", s.quiet)
    if result.unhealthy:
        raise ProcessFailedError(f"not healthy (waited up to {wait_timeout:g} s): {', '.join(result.unhealthy)}; see `logs SERVICE`")
    if not no_diagnostics:
        _print_summary(s.layout, result)


@app.command()
def stop(
    ctx: typer.Context,
    targets: TargetsArg = None,
    runtime: RuntimeOpt = None,
) -> None:
    """Stop the fleet (or the named services) gracefully; data, ids and checkpoints are kept.

    Example: sensor_manager.py stop uploader-berlin
    """
    from sensor_manager import lifecycle

    s = session(ctx)
    result = lifecycle.stop(s.layout, runtime_name=runtime, targets=targets)
    what = ", ".join(result.services) if result.services else "the fleet"
    info(f"Stopped {what}." if result.was_running else f"Already stopped: {what}.", s.quiet)


@app.command()
def restart(
    ctx: typer.Context,
    targets: TargetsArg = None,
    replan: ReplanOpt = False,
    runtime: RuntimeOpt = None,
) -> None:
    """Restart the stored plan's fleet (or the named services), picking up config changes; --replan adopts a changed fleet.

    Example: sensor_manager.py restart sensor-amsterdam
    """
    from sensor_manager import lifecycle

    s = session(ctx)
    result = lifecycle.restart(s.layout, s.load_config(), runtime_name=runtime, targets=targets, replan=replan)
    _note_kept_plan(result.config_differences)
    info(f"Restarted {', '.join(result.services)}.", s.quiet)


@app.command()
def reset(
    ctx: typer.Context,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = False,
    wait_timeout: WaitTimeoutOpt = DEFAULT_WAIT_TIMEOUT,
    replan: ReplanOpt = False,
    runtime: RuntimeOpt = None,
) -> None:
    """Stop, wipe this project's data, lake, archive and checkpoints, start a new fleet_epoch of the stored plan (--replan: the config's).

    Example: sensor_manager.py reset --dry-run
    """
    from sensor_manager import lifecycle

    s = session(ctx, dry_run=dry_run, yes=yes)
    cfg = s.load_config()
    doomed = lifecycle.plan_reset(s.layout, cfg)
    if dry_run:
        out = results()
        out.print(f"Would delete {len(doomed.paths)} paths, then start fleet_epoch {doomed.epoch}:")
        for path in doomed.paths:
            out.print(f"  {path}")
        for name, where in doomed.sinks.items():
            out.print(f"  {name}: rows of fleet_epoch {doomed.old_epoch} in {where}")
        return
    _confirm(f"reset deletes {len(doomed.paths)} paths of project {s.layout.root}", yes)
    done, result = lifecycle.reset(s.layout, cfg, runtime_name=runtime, wait=wait, wait_timeout=wait_timeout, replan=replan)
    _note_kept_plan(result.config_differences)
    for name, where in done.sinks.items():
        info(f"{name}: deleted this project's rows of fleet_epoch {done.old_epoch} from {where}.", s.quiet)
    info(f"Reset: deleted {len(done.paths)} paths; fleet_epoch is now {result.plan.fleet_epoch}; started {len(result.started)} services.", s.quiet)
    if result.unhealthy:
        raise ProcessFailedError(f"not healthy (waited up to {wait_timeout:g} s): {', '.join(result.unhealthy)}; see `logs SERVICE`")


@app.command()
def clean(
    ctx: typer.Context,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    reship: Annotated[bool, typer.Option("--reship", help="Ship the history still in the edge DBs again after the delete.")] = False,
    runtime: RuntimeOpt = None,
) -> None:
    """Delete this project's rows from every enabled sink (uploaders paused; history not re-shipped unless --reship).

    Example: sensor_manager.py clean --dry-run
    """
    from sensor_manager import lifecycle

    s = session(ctx, dry_run=dry_run, yes=yes)
    cfg = s.load_config()
    if not dry_run:
        _confirm(f"clean deletes project {cfg.project}'s rows from every enabled sink", yes)
    result = lifecycle.clean(s.layout, cfg, runtime_name=runtime, dry_run=dry_run, reship=reship)
    verb = "Would delete" if dry_run else "Deleted"
    for name, rows in result.rows.items():
        line = f"{verb} {rows} rows of project {result.project} from {name} ({result.locations[name]})."
        if dry_run:
            results().print(line)
        else:
            info(line, s.quiet)
    if dry_run:
        return
    then = (f"history will be shipped again (ship generation {result.ship_generation})" if result.reship
            else f"{result.sources_moved} sources marked shipped up to their current end")
    info(f"Then {then}.", s.quiet)
    if result.paused:
        info(f"Uploaders paused and started again: {', '.join(result.paused)}.", s.quiet)


@app.command()
def cleanup(
    ctx: typer.Context,
    dry_run: DryRunOpt = False,
    runtime: RuntimeOpt = None,
) -> None:
    """Remove this project's leftovers only: stale pid/lock/status files, orphaned processes it started.

    Example: sensor_manager.py cleanup --dry-run
    """
    from sensor_manager import lifecycle

    s = session(ctx, dry_run=dry_run)
    found = lifecycle.cleanup(s.layout, runtime_name=runtime, dry_run=dry_run)
    verb = "Would remove" if dry_run else "Removed"
    for item in found:
        results().print(f"{verb} {item}")
    info(f"{verb} {len(found)} leftovers." if found else "No leftovers.", s.quiet)


def _status(ctx: typer.Context, runtime, json: bool) -> None:
    from sensor_manager.observe.service_status import COLUMNS, collect_status

    s = session(ctx, json=json)
    report = collect_status(s.layout, runtime)
    if json:
        print_json(report.to_dict())
        return
    if not report.services:
        results().print("No services: the project was never started (run `start`).")
        return
    rows = [COLUMNS, *report.rows()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    sys.stdout.write("\n".join(lines) + "\n" + report.summary + "\n")


@app.command()
def status(
    ctx: typer.Context,
    json: JsonOpt = False,
    runtime: RuntimeOpt = None,
) -> None:
    """Show every service: state, health, restarts, pid (works on a stopped project).

    Example: sensor_manager.py status --json
    """
    _status(ctx, runtime, json)


@app.command("ps")
def ps(
    ctx: typer.Context,
    json: JsonOpt = False,
    runtime: RuntimeOpt = None,
) -> None:
    """Alias of `status`.

    Example: sensor_manager.py ps
    """
    _status(ctx, runtime, json)


@app.command()
def logs(
    ctx: typer.Context,
    targets: TargetsArg = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep following new output (across restarts).")] = False,
    no_follow: Annotated[bool, typer.Option("--no-follow", help="Print what is there and return (the default).")] = False,
    tail: Annotated[Optional[int], typer.Option("--tail", "-n", help="Only the last N lines of each service.", show_default=False)] = None,
    since: Annotated[Optional[str], typer.Option("--since", help="Only lines since a time (2025-01-01T12:00) or a duration ago (10m).", show_default=False)] = None,
    timestamps: Annotated[bool, typer.Option("--timestamps", "-t", help="Show each line's timestamp.")] = False,
    json: Annotated[bool, typer.Option("--json", help="One JSON object per line (NDJSON).")] = False,
    runtime: RuntimeOpt = None,
) -> None:
    """Show the services' output (compose semantics: no follow unless -f).

    Example: sensor_manager.py logs -f --tail 20 uploader-amsterdam
    """
    from sensor_manager.observe.logs import format_line, stream_logs

    s = session(ctx, json=json)
    stream = stream_logs(s.layout, targets, follow=follow and not no_follow, tail=tail, since=since, runtime_name=runtime)
    width = max((len(n) for n in stream.services), default=20)
    for line in stream.lines:
        if json:
            print_ndjson({"service": line.service, "timestamp": line.timestamp, "text": line.text})
        else:
            sys.stdout.write(format_line(line, width, timestamps) + "\n")
            sys.stdout.flush()
