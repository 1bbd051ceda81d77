"""The lake's `city` partition holds display names: any accepted name survives the partition path."""
from __future__ import annotations

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetcore.naming import city_name_problem, safe_city_name
from uploader.schema import PARTITION_COLUMNS

NAMED = ["New York", "São Paulo", "東京", "St. John's", "Zürich", "x=y %2F"]


def partition_values(path) -> list[str]:
    return pa.table(DeltaTable(str(path)).get_add_actions(flatten=True)).column("partition.city").to_pylist()


def test_named_cities_round_trip_through_partition_paths(tmp_path):
    rows = pa.table({"city": NAMED, "date": ["2025-06-01"] * len(NAMED), "n": list(range(len(NAMED)))})
    write_deltalake(str(tmp_path), rows, partition_by=PARTITION_COLUMNS)
    read = DeltaTable(str(tmp_path)).to_pyarrow_table()
    assert sorted(zip(read["city"].to_pylist(), read["n"].to_pylist(), strict=True)) == sorted(zip(NAMED, range(len(NAMED)), strict=True))
    assert sorted(partition_values(tmp_path)) == sorted(NAMED)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("city=")) == sorted(
        ["city=New%20York", "city=S%C3%A3o%20Paulo", "city=%E6%9D%B1%E4%BA%AC", "city=St.%20John%27s", "city=Z%C3%BCrich", "city=x%3Dy%20%252F"])


@given(st.text(min_size=1, max_size=20).filter(lambda name: city_name_problem(name) is None))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_accepted_city_name_round_trips_and_keeps_its_safe_name(tmp_path_factory, name):
    path = tmp_path_factory.mktemp("lake")
    write_deltalake(str(path), pa.table({"city": [name], "date": ["2025-06-01"], "n": [1]}), partition_by=PARTITION_COLUMNS)
    [read] = DeltaTable(str(path)).to_pyarrow_table()["city"].to_pylist()
    assert read == name and partition_values(path) == [name]
    assert safe_city_name(read) == safe_city_name(name)
