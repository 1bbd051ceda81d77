"""The typer app: registers the command modules; every command runs inside the error boundary."""
from __future__ import annotations

from typing import Annotated

import typer

from sensor_manager import __version__
from sensor_manager.cli.boundary import GuardedGroup
from sensor_manager.cli.options import ConfigOpt, GlobalOptions, ProjectDirOpt, QuietOpt, VerboseOpt

app = typer.Typer(
    cls=GuardedGroup,
    name="sensor_manager.py",
    help="Stand up and run an edge-sensor data pipeline: sensors -> SQLite -> uploaders -> lake.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"sensor-manager {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    config: ConfigOpt = None,
    project_dir: ProjectDirOpt = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    traceback: Annotated[bool, typer.Option("--traceback", help="Show a traceback on errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    ctx.obj = GlobalOptions(config=config, project_dir=project_dir, quiet=quiet, verbose=verbose, traceback=traceback)


def _register_commands() -> None:
    # Each module fronts one library area and adds its commands to `app`.
    from sensor_manager.cli import commands  # noqa: F401


_register_commands()


def main() -> None:
    app(prog_name="sensor_manager.py")
