"""Local time of readings: a zone's UTC offset at many instants, DST-correct, without a per-row lookup.

Offsets change only at DST and zone-rule transitions, which are months apart, so a block whose two
ends share an offset and which spans less than `_UNIFORM_SPAN_MS` has one offset throughout;
otherwise it is split in halves until that holds.
"""
from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from fleetcore.errors import ConfigError

_UNIFORM_SPAN_MS = 7 * 86_400_000


@lru_cache(maxsize=None)
def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; a ConfigError naming it when it does not exist."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {name!r}; use an IANA name such as 'Europe/Berlin'") from None


def offset_minutes(tz: ZoneInfo, epoch_ms: int) -> int:
    """Minutes east of UTC in `tz` at the instant `epoch_ms`."""
    offset = datetime.fromtimestamp(epoch_ms / 1000, timezone.utc).astimezone(tz).utcoffset()
    assert offset is not None  # an aware datetime has an offset
    return int(offset.total_seconds() // 60)


def offsets_minutes(tz: ZoneInfo, epoch_ms: np.ndarray) -> np.ndarray:
    """Minutes east of UTC in `tz` at each instant of the sorted array `epoch_ms` (int32)."""
    out = np.empty(len(epoch_ms), dtype=np.int32)
    _fill(tz, epoch_ms, out, 0, len(epoch_ms))
    return out


def _fill(tz: ZoneInfo, epoch_ms: np.ndarray, out: np.ndarray, lo: int, hi: int) -> None:
    if hi <= lo:
        return
    first = offset_minutes(tz, int(epoch_ms[lo]))
    last = offset_minutes(tz, int(epoch_ms[hi - 1]))
    if hi - lo <= 2 or (first == last and epoch_ms[hi - 1] - epoch_ms[lo] < _UNIFORM_SPAN_MS):
        out[lo:hi] = first
        if hi - lo == 2:
            out[hi - 1] = last
        return
    mid = (lo + hi) // 2
    _fill(tz, epoch_ms, out, lo, mid)
    _fill(tz, epoch_ms, out, mid, hi)


def format_offset(minutes: int) -> str:
    """"+HH:MM" / "-HH:MM" as the seed wrote `original_timezone` (but right for negative half hours)."""
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
