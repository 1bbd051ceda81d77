"""`bacalhau render|validate|submit|status`: the plan as Bacalhau job specs (→ runtimes/bacalhau.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from sensor_manager.cli import app
from sensor_manager.cli.options import BaseImageOpt, DryRunOpt, JsonOpt, ReplanOpt, TagOpt, session

SCHEMA_VERSION = 1

bacalhau_app = typer.Typer(help="Run the fleet on Bacalhau: one daemon job per city (render, validate, submit, status).",
                           no_args_is_help=True)
app.add_typer(bacalhau_app, name="bacalhau")

SpecsArg = Annotated[Optional[List[Path]], typer.Argument(help="Job spec files (default: every state/bacalhau/*.yaml).", show_default=False)]


@bacalhau_app.command("render")
def render(
    ctx: typer.Context,
    tag: TagOpt = None,
    base_image: BaseImageOpt = None,
    registry: Annotated[Optional[str], typer.Option("--registry", help="Registry the nodes pull from (the one `build --push --registry R` pushed to).", show_default=False)] = None,
    node_root: Annotated[str, typer.Option("--node-root", help="The project directory on each node (data, state, lake).")] = "/var/lib/sensor-manager",
    replan: ReplanOpt = False,
    json: JsonOpt = False,
) -> None:
    """Write one Bacalhau job spec per city to state/bacalhau/<city>.yaml from the plan; prints the paths.

    Example: ./sensor_manager.py bacalhau render --registry ghcr.io/me --node-root /srv/sensors
    """
    from sensor_manager.cli.output import print_json, results
    from sensor_manager.runtimes import bacalhau

    s = session(ctx, json=json)
    result = bacalhau.render(s.layout, s.load_config(), tag=tag, base_image=base_image, registry=registry,
                             node_root=node_root, replan=replan)
    if s.json:
        print_json({"schema_version": SCHEMA_VERSION, "image": result.image,
                    "specs": {city: str(path) for city, path in result.specs.items()},
                    "role_configs": [str(path) for path in result.role_configs]})
        return
    for path in result.specs.values():
        results().out(str(path), highlight=False)


@bacalhau_app.command("validate")
def validate(ctx: typer.Context, specs: SpecsArg = None, json: JsonOpt = False) -> None:
    """Check job specs offline against the engine's submission rules; exit 0 valid, 2 invalid.

    Example: ./sensor_manager.py bacalhau validate state/bacalhau/amsterdam.yaml
    """
    from fleetcore.errors import ConfigError
    from sensor_manager.cli.output import info, print_json
    from sensor_manager.runtimes import bacalhau

    s = session(ctx, json=json)
    paths = bacalhau.spec_files(s.layout, specs)
    try:
        bacalhau.validate_files(paths)
    except ConfigError as exc:
        if s.json:
            print_json({"schema_version": SCHEMA_VERSION, "valid": False, "errors": exc.problems})
        raise
    if s.json:
        print_json({"schema_version": SCHEMA_VERSION, "valid": True, "specs": [str(p) for p in paths]})
    for path in paths:
        info(f"✓ {path} is valid.", quiet=s.quiet)


@bacalhau_app.command("submit")
def submit(ctx: typer.Context, specs: SpecsArg = None, dry_run: DryRunOpt = False, json: JsonOpt = False) -> None:
    """Validate, then `bacalhau job run` each spec (needs the bacalhau CLI); records the job ids.

    Example: ./sensor_manager.py bacalhau submit --dry-run
    """
    import shlex

    from sensor_manager.cli.output import print_json, results
    from sensor_manager.runtimes import bacalhau

    s = session(ctx, json=json, dry_run=dry_run)
    paths = bacalhau.spec_files(s.layout, specs)
    if s.dry_run:
        bacalhau.validate_files(paths)
        commands = bacalhau.submit_commands(paths)
        if s.json:
            print_json({"schema_version": SCHEMA_VERSION, "dry_run": True, "commands": commands})
        else:
            for command in commands:
                results().out(shlex.join(command), highlight=False)
        return
    jobs = bacalhau.submit(s.layout, paths)
    if s.json:
        print_json({"schema_version": SCHEMA_VERSION, "dry_run": False, "jobs": jobs})
    else:
        for spec, job_id in sorted(jobs.items()):
            results().out(f"{spec}  {job_id}", highlight=False)


@bacalhau_app.command("status")
def status(ctx: typer.Context, json: JsonOpt = False) -> None:
    """Each submitted job's state and its executions per node (`bacalhau job describe --output json`).

    Example: ./sensor_manager.py bacalhau status --json
    """
    from sensor_manager.cli.output import print_json, results
    from sensor_manager.runtimes import bacalhau

    s = session(ctx, json=json)
    rows = bacalhau.status(s.layout)
    if s.json:
        print_json({"schema_version": SCHEMA_VERSION, "jobs": [row.to_dict() for row in rows]})
        return
    for row in rows:
        nodes = ", ".join(f"{e['node']}={e['state']}" for e in row.executions) or "no executions"
        results().out(f"{row.name or row.spec}  {row.job_id}  {row.state}  {nodes}", highlight=False)
