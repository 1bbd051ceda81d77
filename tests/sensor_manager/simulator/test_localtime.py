"""UTC offsets per reading are DST-correct, also inside one block that spans a transition."""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from fleetcore.errors import ConfigError
from sensor_manager.simulator.localtime import format_offset, offset_minutes, offsets_minutes, zone


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


def test_block_across_spring_forward_in_st_johns():
    tz = zone("America/St_Johns")
    start = _ms("2025-03-08T00:00:00")  # DST starts 2025-03-09 02:00 local (05:30 UTC)
    stamps = start + np.arange(0, 3 * 86_400_000, 60_000, dtype=np.int64)
    offsets = offsets_minutes(tz, stamps)
    assert {format_offset(int(o)) for o in offsets} == {"-03:30", "-02:30"}
    expected = np.array([offset_minutes(tz, int(t)) for t in stamps])
    assert (offsets == expected).all()
    switch = int(np.flatnonzero(np.diff(offsets))[0]) + 1
    assert datetime.fromtimestamp(stamps[switch] / 1000, timezone.utc).isoformat() == "2025-03-09T05:30:00+00:00"


def test_long_sparse_block_with_two_transitions():
    tz = zone("Europe/Berlin")
    stamps = _ms("2025-01-01T00:00:00") + np.arange(0, 365 * 86_400_000, 3_600_000, dtype=np.int64)
    offsets = offsets_minutes(tz, stamps)
    expected = np.array([offset_minutes(tz, int(t)) for t in stamps])
    assert (offsets == expected).all() and set(offsets.tolist()) == {60, 120}


def test_unknown_zone_is_a_config_error():
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        zone("Mars/Olympus")
