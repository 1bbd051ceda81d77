"""The raw stage: canonical rows, reasons for rejects, never zero-fill."""
from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetcore.naming import safe_city_name
from uploader.batch import Lineage
from uploader.schema import CANONICAL_SCHEMA
from uploader.sources.sqlite import OUTPUT_NAMES, OUTPUT_TYPES
from uploader.stages.raw import RawStage, _cities

LINEAGE = Lineage("p", 3, "New_York/AB12/sensor_data.db", "g", "new-york", "New_York")


def chunk(**columns) -> pa.RecordBatch:
    n = len(next(iter(columns.values())))
    defaults = {"source_id": list(range(1, n + 1)), "ts_us": [1_748_779_200_000_000] * n, "sensor_id": ["New_York_AB12"] * n,
                "seq": list(range(1, n + 1)), "bad_metrics": [0] * n, "location": ["New York"] * n}
    data = {**defaults, **columns}
    return pa.RecordBatch.from_arrays([pa.array(data.get(name, [None] * n), type_) for name, type_ in zip(OUTPUT_NAMES, OUTPUT_TYPES, strict=True)],
                                      names=OUTPUT_NAMES)


def test_good_rows_become_canonical_with_lineage():
    kept, rejected = RawStage().apply(chunk(temperature=[21.5, None]), LINEAGE)
    assert not rejected and kept.schema == CANONICAL_SCHEMA
    rows = kept.to_pylist()
    assert rows[0]["temperature"] == 21.5 and rows[1]["temperature"] is None  # missing stays missing
    assert {(r["project"], r["fleet_epoch"], r["source"], r["generation"], r["uploader_id"], r["stage"]) for r in rows} == {
        ("p", 3, "New_York/AB12/sensor_data.db", "g", "new-york", "raw")}
    assert str(rows[0]["date"]) == "2025-06-01"


def test_each_unusable_row_is_rejected_with_its_reason():
    kept, rejected = RawStage().apply(chunk(
        ts_us=[None, 5, 1_748_779_200_000_000, 1_748_779_200_000_000, 1_748_779_200_000_000, 1_748_779_200_000_000],
        bad_metrics=[0, 0, 0b10001, 0, 0, 0],
        sensor_id=["s", "s", "s", None, "s", "s"],
        seq=[1, 2, 3, 4, None, 6]), LINEAGE)
    assert [r.reason for r in rejected] == [
        "unparseable timestamp", "implausible timestamp (before 1990 or after 2200)",
        "non-numeric temperature; non-numeric voltage", "missing sensor_id", "missing or non-integer seq"]
    assert kept.column("source_id").to_pylist() == [6]


def test_all_rows_rejected_keeps_nothing():
    kept, rejected = RawStage().apply(chunk(ts_us=[None, None]), LINEAGE)
    assert kept is None and len(rejected) == 2


def test_embedded_coordinates_are_stripped_and_fill_missing_latitude_longitude():
    kept, _ = RawStage().apply(chunk(location=["New York (40.7128, -74.0060)", "Berlin", None]), LINEAGE)
    rows = kept.to_pylist()
    assert [(r["location"], r["latitude"], r["longitude"], r["city"]) for r in rows] == [
        ("New York", 40.7128, -74.006, "New York"), ("Berlin", None, None, "Berlin"), (None, None, None, "New_York")]


def test_city_is_the_display_name_of_the_location_else_the_directory():
    locations = ["São Paulo", " 東京 ", "!!!", "", None]
    assert _cities(pa.array(locations, pa.string()), "Fallback").to_pylist() == ["São Paulo", "東京", "Fallback", "Fallback", "Fallback"]


@given(st.lists(st.one_of(st.none(), st.text(max_size=30)), min_size=1, max_size=20))
@settings(deadline=None)  # Arrow calls on a shared CI machine: behaviour is under test here, not speed
def test_every_row_gets_a_city_with_a_safe_name(locations):
    cities = _cities(pa.array(locations, pa.string()), "Fallback").to_pylist()
    assert len(cities) == len(locations) and all(safe_city_name(city) for city in cities)


@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.booleans()), min_size=1, max_size=60))
def test_every_row_is_either_kept_or_rejected_never_both_never_lost(flags):
    n = len(flags)
    kept, rejected = RawStage().apply(chunk(
        ts_us=[None if bad_ts else 1_748_779_200_000_000 + i for i, (bad_ts, _, _) in enumerate(flags)],
        bad_metrics=[1 if bad_metric else 0 for _, bad_metric, _ in flags],
        seq=[None if no_seq else i + 1 for i, (_, _, no_seq) in enumerate(flags)]), LINEAGE)
    kept_ids = kept.column("source_id").to_pylist() if kept is not None else []
    rejected_ids = [r.source_id for r in rejected]
    assert sorted(kept_ids + rejected_ids) == list(range(1, n + 1))
    assert rejected_ids == [i + 1 for i, f in enumerate(flags) if any(f)]
    assert all(r.reason for r in rejected)
