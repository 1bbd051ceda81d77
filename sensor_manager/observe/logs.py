"""`logs`: the services' output with docker-compose semantics (no follow unless asked, `--tail`, `--since`, `-t`).

Targets are resolved like every lifecycle command (service, city or sensor id); the recorded runtime
supplies the lines (local: the supervisor's per-service files; docker: `docker compose logs`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterator

from fleetcore.errors import UsageError
from sensor_manager.durations import parse_since as parse_since_moment
from sensor_manager.layout import ProjectLayout
from sensor_manager.lifecycle import open_recorded, runtime_services, target_services
from sensor_manager.plan import load_plan
from sensor_manager.runtimes.base import LogLine

MAX_TAIL = 1_000_000


def parse_since(text: str | None, now: datetime | None = None) -> str | None:
    """`--since` (sensor_manager.durations) as a UTC timestamp in the log files' format.

    A naive time is local time, as in docker compose.
    """
    if text is None:
        return None
    return parse_since_moment(text, now=now, naive_is_local=True).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class LogStream:
    runtime: str
    services: list[str]  # the services shown
    lines: Iterator[LogLine]


def stream_logs(
    layout: ProjectLayout,
    targets: list[str] | None = None,
    *,
    follow: bool = False,
    tail: int | None = None,
    since: str | None = None,
    runtime_name: str | None = None,
) -> LogStream:
    """The lines of the targeted services (all when no target); with `follow`, forever."""
    if tail is not None and not 0 <= tail <= MAX_TAIL:
        raise UsageError(f"--tail {tail}: must be between 0 and {MAX_TAIL} (lines are held in memory)")
    runtime, choice = open_recorded(layout, runtime_name)
    names = target_services(runtime, layout, targets)
    lines = runtime.logs(names, follow, tail, parse_since(since))
    plan = load_plan(layout)
    shown = names if names is not None else ([s.name for s in runtime_services(runtime, plan)] if plan else [])
    return LogStream(choice.name, shown, lines)


def format_line(line: LogLine, width: int, timestamps: bool) -> str:
    """`service | text` (compose style), with the line's timestamp after the bar when asked."""
    stamp = f"{line.timestamp or '-'} " if timestamps else ""
    return f"{line.service:<{width}} | {stamp}{line.text}"
