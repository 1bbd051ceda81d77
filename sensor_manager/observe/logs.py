"""`logs`: the services' output with docker-compose semantics (no follow unless asked, `--tail`, `--since`, `-t`).

Targets are resolved like every lifecycle command (service, city or sensor id); the recorded runtime
supplies the lines (local: the supervisor's per-service files; docker: `docker compose logs`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterator

from fleetcore.errors import UsageError
from sensor_manager.layout import ProjectLayout
from sensor_manager.lifecycle import open_recorded, runtime_services, target_services
from sensor_manager.plan import load_plan
from sensor_manager.runtimes.base import LogLine

_RELATIVE = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_since(text: str | None, now: datetime | None = None) -> str | None:
    """`--since` as a UTC timestamp in the log files' format: `10m`, `1h30m`, `45s`, or an ISO date/time."""
    if text is None:
        return None
    now = now or datetime.now(timezone.utc)
    match = _RELATIVE.fullmatch(text.strip())
    if match and any(match.groups()):
        hours, minutes, seconds = (int(g or 0) for g in match.groups())
        moment = now - timedelta(hours=hours, minutes=minutes, seconds=seconds)
    else:
        try:
            moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"--since {text!r}: use a duration like 10m, 1h30m, 45s or a time like 2025-01-01T12:00:00") from None
        if moment.tzinfo is None:
            moment = moment.astimezone()  # a naive time is local time, as in docker compose
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
    if tail is not None and tail < 0:
        raise UsageError("--tail must be 0 or more")
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
