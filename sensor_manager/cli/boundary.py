"""The one place an exception becomes a message and an exit code.

`GuardedGroup` is the typer app's click group, so the boundary applies both to the real CLI and to
tests driving the app through typer's CliRunner. (Typer vendors its own click: its exceptions are
the ones to pass through, not the standalone `click` package's.)
"""
from __future__ import annotations

import sys
import traceback

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from fleetcore.errors import ExitCode, SensorManagerError


def wants_traceback(ctx) -> bool:
    if "--traceback" in sys.argv:
        return True
    while ctx is not None:
        if ctx.params.get("traceback"):
            return True
        ctx = ctx.parent
    return False


def report(message: str) -> None:
    for line in message.splitlines() or [""]:
        sys.stderr.write(f"error: {line}\n")
    sys.stderr.flush()


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
        except SensorManagerError as exc:
            if wants_traceback(ctx):
                traceback.print_exc()
            report(str(exc))
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except Exception as exc:  # the boundary: anything unexpected becomes one line
            if wants_traceback(ctx):
                traceback.print_exc()
            report(f"unexpected {type(exc).__name__}: {exc} (rerun with --traceback)")
            raise typer.Exit(int(ExitCode.FAILURE)) from None
