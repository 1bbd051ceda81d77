"""The error boundary around every command: fleetcore.boundary turns an exception into a message and an exit code.

`GuardedGroup` is the typer app's click group, so the boundary applies both to the real CLI and to
tests driving the app through typer's CliRunner. (Typer vendors its own click: its exceptions are
the ones to pass through, not the standalone `click` package's.)
"""
from __future__ import annotations

import sys

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from fleetcore.boundary import exit_code_for


def wants_traceback(ctx) -> bool:
    if "--traceback" in sys.argv:
        return True
    while ctx is not None:
        if ctx.params.get("traceback"):
            return True
        ctx = ctx.parent
    return False


class GuardedGroup(TyperGroup):
    """The app's click group: the error boundary, and -q/-v on every command (declared once)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from sensor_manager.cli.options import accept_quiet_and_verbose

        accept_quiet_and_verbose(self)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):
            raise
        except (Exception, KeyboardInterrupt) as exc:  # the boundary: anything else becomes error lines
            raise typer.Exit(exit_code_for(exc, show_traceback=wants_traceback(ctx))) from None
