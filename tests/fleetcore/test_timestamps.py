"""fleetcore.timestamps.iso_epoch: the one ISO-time parser (status files, docker log lines, edge stats)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetcore.timestamps import iso_epoch

moments = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 31))
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@given(moment=moments, zone=offsets)
def test_any_aware_isoformat_reads_back_as_its_epoch(moment, zone):
    aware = moment.replace(tzinfo=zone)
    assert iso_epoch(aware.isoformat()) == pytest.approx(aware.timestamp(), abs=1e-6)


@given(moment=moments)
def test_a_time_without_offset_is_utc_and_z_means_utc(moment):
    expected = moment.replace(tzinfo=timezone.utc).timestamp()
    assert iso_epoch(moment.isoformat()) == pytest.approx(expected, abs=1e-6)
    assert iso_epoch(moment.isoformat() + "Z") == pytest.approx(expected, abs=1e-6)


@given(moment=moments, nanos=st.integers(min_value=0, max_value=999_999_999))
def test_docker_nanosecond_stamps_keep_their_fraction(moment, nanos):
    stamp = moment.replace(microsecond=0).isoformat() + f".{nanos:09d}Z"
    expected = moment.replace(microsecond=0, tzinfo=timezone.utc).timestamp() + nanos / 1e9
    assert iso_epoch(stamp) == pytest.approx(expected, abs=1e-6)


@given(text=st.text())
def test_anything_else_is_none_never_an_exception(text):
    result = iso_epoch(text)
    assert result is None or isinstance(result, float)


@pytest.mark.parametrize("text", [None, "", "yesterday", "2025-13-01T00:00:00"])
def test_empty_and_malformed_give_none(text):
    assert iso_epoch(text) is None
