"""Two consoles: results on stdout, messages on stderr. Colour only on a TTY and without NO_COLOR."""
from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

from rich.console import Console


def _no_color() -> bool:
    return bool(os.environ.get("NO_COLOR") or os.environ.get("NO_COLORS"))


def results() -> Console:
    """Console for results (stdout); created per call so tests capturing stdout see the output."""
    return Console(file=sys.stdout, no_color=_no_color(), highlight=False, soft_wrap=True)


def messages() -> Console:
    """Console for messages, warnings and progress (stderr)."""
    return Console(file=sys.stderr, no_color=_no_color(), highlight=False, soft_wrap=True)


def print_json(document: dict[str, Any]) -> None:
    """One JSON document on stdout (one-shot results carry `schema_version`)."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    sys.stdout.flush()


def print_ndjson(document: dict[str, Any]) -> None:
    """One line of a JSON stream on stdout."""
    sys.stdout.write(json.dumps(document, separators=(",", ":"), default=str) + "\n")
    sys.stdout.flush()


class _StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is at the time (tests swap it between invocations)."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(self.format(record) + "\n")


_VERBOSE_HANDLER = _StderrHandler()
_VERBOSE_HANDLER.setFormatter(logging.Formatter("%(levelname).1s %(name)s: %(message)s"))


def set_verbose(on: bool) -> None:
    """--verbose: the library's debug log (paths resolved, runtime chosen, commands run) on stderr."""
    package = logging.getLogger("sensor_manager")
    if on:
        package.setLevel(logging.DEBUG)
        package.addHandler(_VERBOSE_HANDLER)
    else:
        package.setLevel(logging.NOTSET)
        package.removeHandler(_VERBOSE_HANDLER)
    package.propagate = not on  # one copy of each line when a command also configures the root logger


def info(message: str, quiet: bool = False) -> None:
    if not quiet:
        messages().print(message)


def warn(message: str) -> None:
    messages().print(f"[yellow]warning:[/yellow] {message}")
