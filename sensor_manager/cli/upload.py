"""`upload`: run an uploader in the foreground (the same flags as `python -m uploader`)."""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from sensor_manager.cli import app
from sensor_manager.cli.options import ConfigOpt, ProjectDirOpt, session
from fleetcore.errors import ExitCode, UsageError


@app.command()
def upload(
    ctx: typer.Context,
    sqlite: Annotated[Path, typer.Option("--sqlite", help="A sensor_data.db, or a directory searched recursively for them.")],
    config: ConfigOpt = None,
    project_dir: ProjectDirOpt = None,
    uploader_id: Annotated[Optional[str], typer.Option("--uploader-id", help="This uploader's name (default: the city directory of --sqlite as a slug).", show_default=False)] = None,
    once: Annotated[bool, typer.Option("--once", help="Drain every source to its end as of start, then exit (default). Exits 1, saying so, when another running uploader (e.g. the fleet's) holds this --uploader-id or a source: stop the fleet first.")] = False,
    continuous: Annotated[bool, typer.Option("--continuous", help="Poll every --interval seconds until SIGTERM.")] = False,
    interval: Annotated[Optional[float], typer.Option("--interval", help="Seconds between polls (default: uploader.interval_seconds).", show_default=False)] = None,
    lake: Annotated[Optional[Path], typer.Option("--lake", help="Lake directory (default: <project-dir>/lake).", show_default=False)] = None,
    state_dir: Annotated[Optional[Path], typer.Option("--state-dir", help="State root (default: <project-dir>/state).", show_default=False)] = None,
    check: Annotated[bool, typer.Option("--check", help="Exit 0 when the status file is fresh and no sink is failing permanently.")] = False,
    development: Annotated[bool, typer.Option("--development", help="Re-upload everything under a new fleet epoch.")] = False,
) -> None:
    """Ship every reading of the sensor DBs exactly once to the lake. Example: ./sensor_manager.py upload --sqlite data/New_York"""
    from uploader import runner
    from uploader.allocators import tune_allocators

    tune_allocators()
    if once and continuous:
        raise UsageError("--once and --continuous exclude each other; pick one.")
    s = session(ctx, config, project_dir)
    if s.quiet or s.verbose:  # otherwise Python's default: warnings and errors on stderr
        logging.basicConfig(stream=sys.stderr, level=logging.ERROR if s.quiet else logging.INFO,
                            format="%(asctime)s %(levelname)s %(message)s")
    from sensor_manager.config import load_config

    loaded = load_config(s.config_path, s.project_dir)  # the uploader takes resolved settings from its caller
    options = dict(sqlite=sqlite, settings=loaded.uploader, project=loaded.project, config=s.config_path,
                   project_dir=s.project_dir, uploader_id=uploader_id,
                   continuous=continuous, interval=interval, lake=lake, state_dir=state_dir, development=development)
    if check:
        healthy, reason = runner.check(**options)
        typer.echo(reason, err=True)
        raise typer.Exit(int(ExitCode.OK if healthy else ExitCode.FAILURE))
    if not runner.upload(**options):
        raise typer.Exit(int(ExitCode.FAILURE))
