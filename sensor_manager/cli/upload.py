"""`upload`: run an uploader in the foreground, with the flags and parser of `python -m uploader` (uploader.cli).

The command hands its arguments, `--help` included, to that parser; it only adds the project's
resolved config, so the uploader takes its settings from its caller.
"""
from __future__ import annotations

import logging
import sys

import typer

from sensor_manager.cli import app
from sensor_manager.cli.options import session
from uploader import cli as upload_cli

PROG = "sensor_manager.py upload"


@app.command(
    help=f"{upload_cli.DESCRIPTION} Example: ./{PROG} --sqlite data/New_York",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
def upload(ctx: typer.Context) -> None:
    args = upload_cli.parse_args(ctx.args, prog=PROG, help_command=f"./{PROG} --help")
    s = session(ctx, args.config, args.project_dir)
    quiet, verbose = s.quiet or args.quiet, s.verbose or args.verbose  # before the name, or after it
    if quiet or verbose:  # otherwise Python's default: warnings and errors on stderr
        logging.basicConfig(stream=sys.stderr, level=logging.ERROR if quiet else logging.INFO,
                            format=upload_cli.LOG_FORMAT)
    from sensor_manager.cli.output import warn
    from sensor_manager.config import load_config

    loaded = load_config(s.config_path, s.project_dir, cosmos_config=args.cosmos_config)
    for note in [] if quiet else loaded.notes:
        warn(note)
    args.config, args.project_dir = s.config_path, s.project_dir
    raise typer.Exit(upload_cli.run(args, settings=loaded.uploader, project=loaded.project))
