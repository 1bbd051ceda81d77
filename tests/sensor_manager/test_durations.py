"""The one duration / --since grammar: compound units, ISO times, a bound, one error per flag."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetcore.errors import ExitCode, UsageError
from sensor_manager.durations import MAX_DURATION_DAYS, UNIT_SECONDS, parse_duration, parse_since

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
BOUND = MAX_DURATION_DAYS * 86_400


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86_400), ("1w", 604_800),
    ("1h30m", 5400), ("2d12h", 216_000), ("1.5h", 5400), (" 1H 30M ", 5400), ("0s", 0),
])
def test_durations(text, seconds):
    assert parse_duration(text, "--backfill") == seconds


@pytest.mark.parametrize("text", ["", "h", "1x", "-5m", "1h-30m", "soon", "1e3s", "nan", "inf", "1..5h"])
def test_malformed_durations_name_the_flag(text):
    with pytest.raises(UsageError) as info:
        parse_duration(text, "--backfill")
    assert str(info.value).startswith(f"--backfill {text!r}: use a duration like")
    assert info.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize("text", [f"{MAX_DURATION_DAYS + 1}d", "1000000d", "99999999999d", "99999999999999999999d",
                                  "9" * 400 + "s"])
def test_durations_beyond_the_bound_are_usage_errors(text):
    for call in (lambda: parse_duration(text, "--backfill"), lambda: parse_since(text, now=NOW)):
        with pytest.raises(UsageError, match=rf"at most {MAX_DURATION_DAYS}d"):
            call()


@pytest.mark.parametrize(("text", "moment"), [
    ("1d", NOW - timedelta(days=1)),
    ("1h30m", NOW - timedelta(minutes=90)),
    ("2025-05-01", datetime(2025, 5, 1, tzinfo=timezone.utc)),
    ("2025-05-01T10:00", datetime(2025, 5, 1, 10, tzinfo=timezone.utc)),
    ("2025-05-01T10:00:00Z", datetime(2025, 5, 1, 10, tzinfo=timezone.utc)),
    ("2025-05-01T12:00:00+02:00", datetime(2025, 5, 1, 10, tzinfo=timezone.utc)),
])
def test_since(text, moment):
    assert parse_since(text, now=NOW) == moment


def test_since_reads_a_naive_time_as_local_time_when_asked():
    naive = datetime(2025, 5, 1, 10, 0)
    assert parse_since("2025-05-01T10:00", now=NOW, naive_is_local=True) == naive.astimezone().astimezone(timezone.utc)


def test_malformed_since_names_the_flag():
    with pytest.raises(UsageError, match=r"^--since 'yesterday': use a duration like .* or an ISO time"):
        parse_since("yesterday", now=NOW)


_PARTS = st.lists(st.tuples(st.integers(0, 500), st.sampled_from(sorted(UNIT_SECONDS))), min_size=1, max_size=5)


@given(_PARTS)
def test_a_compound_duration_is_the_sum_of_its_parts(parts):
    text = "".join(f"{number}{unit}" for number, unit in parts)
    total = sum(number * UNIT_SECONDS[unit] for number, unit in parts)
    if total <= BOUND:
        assert parse_duration(text, "--x") == total
        assert parse_since(text, now=NOW) == NOW - timedelta(seconds=total)
    else:
        with pytest.raises(UsageError):
            parse_duration(text, "--x")


@given(st.text(max_size=30))
def test_any_text_is_a_bounded_duration_or_a_usage_error(text):
    try:
        seconds = parse_duration(text, "--x")
    except UsageError as exc:
        assert str(exc).startswith(f"--x {text!r}: ")
    else:
        assert 0 <= seconds <= BOUND


@given(st.text(max_size=40))
def test_any_text_is_an_aware_since_or_a_usage_error(text):
    try:
        moment = parse_since(text, now=NOW)
    except UsageError as exc:
        assert str(exc).startswith(f"--since {text!r}: ")
    else:
        assert moment.utcoffset() == timedelta(0)
