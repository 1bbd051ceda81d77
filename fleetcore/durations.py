"""The one grammar for durations and `--since` times, used by every flag and config key that takes them.

A duration is one or more `<number><unit>` parts, units w, d, h, m, s (`90s`, `1h30m`, `1.5h`, `2d12h`),
or a plain number of seconds (`90`). A `--since` value is a duration ago, or an ISO 8601 date/time
(`2025-06-01`, `2025-06-01T12:00`, `2025-06-01T12:00:00Z`, `...+02:00`). Durations are bounded by
MAX_DURATION_DAYS so that no flag can overflow a date or loop over an absurd range.
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone

from fleetcore.errors import UsageError

MAX_DURATION_DAYS = 3650  # ten years: beyond any history a fleet keeps, far inside datetime's range
UNIT_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_PART = r"(\d+(?:\.\d+)?)\s*([wdhms])"
_COMPOUND = re.compile(rf"(?:{_PART}\s*)+")
_PARTS = re.compile(_PART)
_SECONDS = re.compile(r"\d+(?:\.\d+)?")
GRAMMAR = "a duration like 90s, 10m, 1h30m, 2d or 1w (plain numbers are seconds)"


def parse_duration(text: str, flag: str) -> float:
    """Seconds of a duration; UsageError naming `flag` when it is malformed or longer than the bound."""
    seconds = _duration_seconds(text)
    if seconds is None:
        raise UsageError(f"{flag} {text!r}: use {GRAMMAR}")
    _check_bound(text, flag, seconds)
    return seconds


def parse_since(text: str, flag: str = "--since", *, now: datetime | None = None,
                naive_is_local: bool = False) -> datetime:
    """The aware UTC moment a duration ago, or an ISO date/time (naive: UTC, or local time if `naive_is_local`)."""
    seconds = _duration_seconds(text)
    now = now or datetime.now(timezone.utc)
    if seconds is not None:
        _check_bound(text, flag, seconds)
        return now - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"{flag} {text!r}: use {GRAMMAR}, or an ISO time like 2025-06-01T12:00") from None
    if moment.tzinfo is None:
        moment = moment.astimezone() if naive_is_local else moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _duration_seconds(text: str) -> float | None:
    """Seconds the text spells as a duration, or None when it is not one (it may still be a time)."""
    stripped = text.strip().lower()
    if _SECONDS.fullmatch(stripped):
        return float(stripped)
    if not _COMPOUND.fullmatch(stripped):
        return None
    return sum(float(number) * UNIT_SECONDS[unit] for number, unit in _PARTS.findall(stripped))


def _check_bound(text: str, flag: str, seconds: float) -> None:
    if not math.isfinite(seconds) or seconds > MAX_DURATION_DAYS * UNIT_SECONDS["d"]:
        raise UsageError(f"{flag} {text!r}: at most {MAX_DURATION_DAYS}d")
