"""The one place an exception becomes `error:` lines on stderr and a process exit code.

Both CLIs end here: sensor_manager's click group (cli/boundary.py) and `python -m uploader`.
"""
from __future__ import annotations

import sys
import traceback

from fleetcore.errors import ExitCode, SensorManagerError

INTERRUPTED = 130  # the shell's code for a process stopped by SIGINT


def report(message: str) -> None:
    for line in message.splitlines() or [""]:
        sys.stderr.write(f"error: {line}\n")
    sys.stderr.flush()


def exit_code_for(exc: BaseException, *, show_traceback: bool = False) -> int:
    """Report `exc` (a traceback first when asked) and return the exit code it stands for."""
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED
    if show_traceback:
        traceback.print_exception(exc)
    if isinstance(exc, SensorManagerError):
        report(str(exc))
        if exc.hint:
            sys.stderr.write(f"{exc.hint}\n")
        return int(exc.exit_code)
    report(f"unexpected {type(exc).__name__}: {exc} (rerun with --traceback)")
    return int(ExitCode.FAILURE)
