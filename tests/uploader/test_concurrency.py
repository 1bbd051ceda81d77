"""Real processes: four city uploaders committing to one table, and two uploaders on the same data."""
from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError

CITIES = ["Amsterdam", "Berlin", "London", "New_York"]


def write_config(project: Path, batch_size: int) -> Path:
    config = project / "sensor-manager.yaml"
    config.write_text(f"uploader:\n  sinks:\n    delta:\n      batch_size: {batch_size}\n      commit_retries: 100\n")
    return config


def start_uploader(project: Path, sqlite: Path, config: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "uploader", "--sqlite", str(sqlite), "--project-dir", str(project),
                             "--config", str(config), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_four_concurrent_city_uploaders_lose_no_commit(project, sensor_db, lake_rows):
    expected = 0
    for city in CITIES:
        for code in ("AA11", "BB22"):
            db = sensor_db(project / "data" / city / code / "sensor_data.db", sensor_id=f"{city}_{code}",
                           location=city.replace("_", " "))
            db.append(1_500)
            expected += 1_500
    config = write_config(project, batch_size=150)  # ~10 commits per source, 80 racing commits in all
    processes = [start_uploader(project, project / "data" / city, config) for city in CITIES]
    results = [(p.wait(timeout=240), p.stderr.read()) for p in processes]
    assert all(code == 0 for code, _ in results), results
    table = lake_rows(project / "lake" / "sensor_readings")
    assert table.num_rows == expected
    assert max(Counter(zip(table["sensor_id"].to_pylist(), table["seq"].to_pylist(), strict=True)).values()) == 1
    assert sorted(set(table["uploader_id"].to_pylist())) == ["amsterdam", "berlin", "london", "new-york"]


@pytest.mark.slow
def test_two_uploaders_on_one_data_dir_ship_exactly_once(project, sensor_db, lake_rows):
    for code in ("AA11", "BB22", "CC33"):
        sensor_db(project / "data" / "Berlin" / code / "sensor_data.db", sensor_id=f"Berlin_{code}").append(2_000)
    config = write_config(project, batch_size=200)
    first = start_uploader(project, project / "data", config, "--uploader-id", "one")
    second = start_uploader(project, project / "data", config, "--uploader-id", "two")
    for racer in (first, second):  # one that found a source held by the other says so and exits 1
        code, err = racer.wait(timeout=240), racer.stderr.read()
        assert code == 0 or (code == 1 and "sources are being shipped by another running uploader" in err), err
    third = start_uploader(project, project / "data", config, "--uploader-id", "three")  # catches whatever a skip left
    assert third.wait(timeout=240) == 0
    table = lake_rows(project / "lake" / "sensor_readings")
    assert table.num_rows == 6_000
    assert max(Counter(zip(table["sensor_id"].to_pylist(), table["seq"].to_pylist(), strict=True)).values()) == 1


def test_a_held_source_lock_makes_the_other_uploader_skip_and_say_so(project, sensor_db, invocation):
    from uploader.locks import SourceLocks
    from uploader.pipeline import Uploader

    path = project / "data" / "Berlin" / "AA11" / "sensor_data.db"
    sensor_db(path).append(10)
    holder = SourceLocks(project / "state" / "locks")
    assert holder.acquire(path)
    other = subprocess.run([sys.executable, "-c", (
        "import sys; from pathlib import Path; from uploader.locks import SourceLocks;"
        f"sys.exit(0 if not SourceLocks(Path({str(project / 'state' / 'locks')!r})).acquire(Path({str(path)!r})) else 1)")])
    assert other.returncode == 0  # another process cannot take it
    uploader = Uploader(invocation(uploader_id="second"))
    try:
        assert uploader.run_once()
    finally:
        uploader.close()
    holder.release_all()
    [skipped] = uploader.others.values()
    assert skipped.skipped == "locked by another uploader" and not skipped.locked


def test_two_writers_racing_on_one_app_id_cannot_both_commit(tmp_path):
    import pyarrow as pa

    path = str(tmp_path / "t")
    rows = pa.table({"x": [1]})
    write_deltalake(path, rows)
    stale_a, stale_b = DeltaTable(path), DeltaTable(path)
    write_deltalake(stale_a, rows, mode="append", commit_properties=CommitProperties(app_transactions=[Transaction("src", 5)]))
    with pytest.raises(CommitFailedError):
        write_deltalake(stale_b, rows, mode="append", commit_properties=CommitProperties(app_transactions=[Transaction("src", 5)]))
    assert DeltaTable(path).to_pyarrow_table().num_rows == 2


def test_a_commit_of_several_app_transactions_loses_a_race_on_any_one_of_them(tmp_path):
    import pyarrow as pa

    path = str(tmp_path / "t")
    rows = pa.table({"x": [1]})
    write_deltalake(path, rows)
    stale_a, stale_b = DeltaTable(path), DeltaTable(path)
    write_deltalake(stale_a, rows, mode="append", commit_properties=CommitProperties(app_transactions=[Transaction("src", 5)]))
    with pytest.raises(CommitFailedError):
        write_deltalake(stale_b, rows, mode="append", commit_properties=CommitProperties(
            app_transactions=[Transaction("other", 3), Transaction("src", 5)]))
    table = DeltaTable(path)
    assert table.to_pyarrow_table().num_rows == 2 and table.transaction_version("other") is None
