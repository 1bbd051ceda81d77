"""The error boundary around every command: fleetcore.boundary turns an exception into a message and an exit code.

`GuardedGroup` is the typer app's click group, so the boundary applies both to the real CLI and to
tests driving the app through typer's CliRunner. (Typer vendors its own click: its exceptions are
the ones to catch, not the standalone `click` package's.) Usage errors (unknown option, bad value,
missing argument) raised while parsing the app or a command become `error: …` plus a help hint and
exit 2, instead of typer's boxed panel.
"""
from __future__ import annotations

import sys

import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperGroup
from typer.exceptions import TyperException

from fleetcore.boundary import exit_code_for, report


def wants_traceback(ctx) -> bool:
    if "--traceback" in sys.argv:
        return True
    while ctx is not None:
        if ctx.params.get("traceback"):
            return True
        ctx = ctx.parent
    return False


def report_click_error(exc: ClickException, command_path: str) -> typer.Exit:
    """Print a click error (usage errors with a hint to the command's --help); return the Exit to raise.

    `command_path` names the command being parsed, for errors that carry no context of their own.
    """
    if isinstance(exc, NoArgsIsHelpError):  # the help is printed already; nothing was wrong but the call
        return typer.Exit(exc.exit_code)
    message = exc.format_message()
    report(message[:1].lower() + message[1:])
    if isinstance(exc, UsageError):
        context = getattr(exc, "ctx", None)
        sys.stderr.write(f"try './{context.command_path if context else command_path} --help'\n")
    return typer.Exit(exc.exit_code)


class GuardedGroup(TyperGroup):
    """The app's click group: the error boundary, and the shared options on every command (declared once)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from sensor_manager.cli.options import accept_shared_options

        accept_shared_options(self)

    def make_context(self, info_name, args, parent=None, **extra):
        try:  # options given before the command name are parsed here
            return super().make_context(info_name, args, parent=parent, **extra)
        except ClickException as exc:
            raise report_click_error(exc, info_name or self.name or "") from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ClickException as exc:  # the command's own arguments, or an unknown command
            path = " ".join(filter(None, (ctx.command_path, ctx.invoked_subcommand)))
            raise report_click_error(exc, path) from None
        except (typer.Exit, typer.Abort, TyperException):
            raise
        except (Exception, KeyboardInterrupt) as exc:  # the boundary: anything else becomes error lines
            raise typer.Exit(exit_code_for(exc, show_traceback=wants_traceback(ctx))) from None
