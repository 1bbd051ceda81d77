"""ISO-8601 / RFC 3339 times as seconds since the epoch: the one parser behind status files, docker logs and edge stats."""
from __future__ import annotations

from datetime import datetime, timezone


def iso_epoch(stamp: str | None) -> float | None:
    """Seconds since the epoch of an ISO time, or None when it is empty or not a time.

    Accepts `Z`, any offset and more than six fractional digits (docker writes nanoseconds); a time
    without an offset is UTC, as everywhere else in sensor-manager.
    """
    if not stamp:
        return None
    text = str(stamp).strip().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    fraction, offset = "", ""
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        fraction, offset = rest[:digits], rest[digits:]
    else:
        for sign in ("+", "-"):
            if sign in head[10:]:
                index = head.rindex(sign)
                head, offset = head[:index], head[index:]
    try:
        moment = datetime.fromisoformat(head + offset) if offset else datetime.fromisoformat(head).replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    return moment.timestamp() + (float("0." + fraction) if fraction else 0.0)
