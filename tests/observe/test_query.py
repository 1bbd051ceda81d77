"""`query` through the CLI runner against a hand-built fleet whose every number is known."""
from __future__ import annotations

import json

import pytest

from sensor_manager.cli import app
from sensor_manager.observe import lake

HOSTILE = "x' OR 1=1 --"


def run(runner, fleet, *args):
    return runner.invoke(app, ["query", "--project-dir", str(fleet.root), *args])


def rows_of(result):
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return json.loads(result.output)["rows"]


def test_default_is_the_newest_ten_readings_oldest_first(runner, fleet):
    rows = rows_of(run(runner, fleet, "--json"))
    # 3 sensors x seq 20, 19, 18 are the newest nine; the tenth is a seq-17 row.
    assert len(rows) == 10
    assert [r["seq"] for r in rows] == [17, 18, 18, 18, 19, 19, 19, 20, 20, 20]
    assert rows[-1]["timestamp"] == "2025-06-01T12:00:00.000+00:00"


def test_sensor_filter_limit_and_values(runner, fleet):
    rows = rows_of(run(runner, fleet, "--sensor", "Amsterdam_AM01", "--limit", "3", "--format", "json"))
    assert [(r["sensor_id"], r["seq"], r["temperature"]) for r in rows] == [
        ("Amsterdam_AM01", 18, 61.8), ("Amsterdam_AM01", 19, 61.9), ("Amsterdam_AM01", 20, 61.0),
    ]
    assert rows[-1]["anomaly_type"] == "spike" and rows[0]["anomaly_type"] is None


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), 60),
        (("--city", "amsterdam"), 40),
        (("--city", "São Paulo"), 20),
        (("--city", "sao-paulo"), 20),
        (("--since", "2025-06-01T11:59:55"), 18),  # seq 15..20 of each sensor
        (("--since", "2025-06-01T11:59:55+00:00", "--sensor-id", "Sao_Paulo_SA00"), 6),
        (("--since", "1h"), 0),  # the fixture's readings are from 2025
    ],
)
def test_count(runner, fleet, args, expected):
    assert rows_of(run(runner, fleet, "--count", "--json", *args)) == [{"count": expected}]


def test_latest_is_one_row_per_sensor(runner, fleet):
    rows = rows_of(run(runner, fleet, "--latest", "--json"))
    assert [(r["sensor_id"], r["seq"]) for r in rows] == [("Amsterdam_AM00", 20), ("Amsterdam_AM01", 20), ("Sao_Paulo_SA00", 20)]


def test_list_edge(runner, fleet):
    rows = rows_of(run(runner, fleet, "--list", "--json"))
    assert [(r["sensor_id"], r["city"], r["rows"]) for r in rows] == [
        ("Amsterdam_AM00", "Amsterdam", 20), ("Amsterdam_AM01", "Amsterdam", 20), ("Sao_Paulo_SA00", "São Paulo", 20),
    ]
    assert rows[0]["first_timestamp"] == "2025-06-01T11:59:41.000+00:00"
    assert rows[0]["last_timestamp"] == "2025-06-01T12:00:00.000+00:00"


def test_all_reports_schema_count_sample_and_distinct_values(runner, fleet):
    result = run(runner, fleet, "--all", "--city", "Sao_Paulo", "--json")
    assert result.exit_code == 0, result.output
    (db,) = json.loads(result.output)["databases"]
    assert db["rows"] == 20 and db["sensor_ids"] == ["Sao_Paulo_SA00"] and db["locations"] == ["São Paulo"]
    assert any(s.startswith(("CREATE TABLE sensor_readings", "CREATE VIEW sensor_readings")) for s in db["schema"])
    assert [r["id"] for r in db["sample"]] == [1, 2, 3, 4, 5]
    text = run(runner, fleet, "--all", "--city", "Sao_Paulo")
    assert "Total records: 20" in text.output and "Unique location values: São Paulo" in text.output


def test_csv_and_table_formats(runner, fleet):
    result = run(runner, fleet, "--format", "csv", "--limit", "2", "--sensor-id", "Amsterdam_AM00")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].startswith("timestamp,sensor_id,location,temperature")
    assert lines[2].startswith("2025-06-01T12:00:00.000+00:00,Amsterdam_AM00,Amsterdam,60.0")
    table = run(runner, fleet, "--limit", "1", "--sensor-id", "Amsterdam_AM00")
    assert "Amsterdam_AM00" in table.output and "\x1b[" not in table.output


@pytest.mark.parametrize("source", ["edge", "lake"])
def test_hostile_filters_match_nothing_and_change_nothing(runner, fleet, tree_listing, source):
    fleet.upload("Amsterdam")
    before = tree_listing(fleet.root)
    for args in (("--sensor-id", HOSTILE), ("--city", HOSTILE), ("--sensor-id", "Amsterdam_AM00' --")):
        assert rows_of(run(runner, fleet, "--source", source, "--count", "--json", *args)) == [{"count": 0}]
        assert rows_of(run(runner, fleet, "--source", source, "--json", *args)) == []
    assert tree_listing(fleet.root) == before


def test_lake_queries(runner, fleet):
    fleet.upload("Amsterdam", upto={"Amsterdam_AM00": 15})
    assert rows_of(run(runner, fleet, "--source", "lake", "--count", "--json")) == [{"count": 35}]
    listed = rows_of(run(runner, fleet, "--source", "lake", "--list", "--json"))
    assert [(r["sensor_id"], r["rows"], r["last_timestamp"]) for r in listed] == [
        ("Amsterdam_AM00", 15, "2025-06-01T11:59:55.000+00:00"), ("Amsterdam_AM01", 20, "2025-06-01T12:00:00.000+00:00"),
    ]
    latest = rows_of(run(runner, fleet, "--source", "lake", "--latest", "--city", "AMSTERDAM", "--json"))
    assert [(r["sensor_id"], r["seq"]) for r in latest] == [("Amsterdam_AM00", 15), ("Amsterdam_AM01", 20)]
    newest = rows_of(run(runner, fleet, "--source", "lake", "--limit", "2", "--sensor", "Amsterdam_AM00", "--json"))
    assert [r["seq"] for r in newest] == [14, 15]


def test_sql_over_the_lake(runner, fleet):
    fleet.upload("Amsterdam")
    fleet.upload("Sao_Paulo")
    sql = "SELECT city, date_trunc('hour', timestamp) AS hour, round(avg(temperature), 4) AS avg_t, count(*) AS n FROM sensor_readings GROUP BY ALL ORDER BY city, hour"
    rows = rows_of(run(runner, fleet, "--sql", sql, "--json"))
    # Sensor k writes 60+k+(seq%10)/10 at 11:59:41..12:00:00: seq 1..19 fall in hour 11 (mean 60+k+0.47368), seq 20 in hour 12.
    assert [(r["city"], r["hour"][11:13], r["avg_t"], r["n"]) for r in rows] == [
        ("Amsterdam", "11", 60.9737, 38), ("Amsterdam", "12", 60.5, 2), ("São Paulo", "11", 60.4737, 19), ("São Paulo", "12", 60.0, 1),
    ]


@pytest.mark.parametrize("spelling", ["São Paulo", "sao paulo", "Sao_Paulo", "sao-paulo"])
def test_lake_city_is_the_display_name_and_every_spelling_finds_it(runner, fleet, spelling):
    fleet.upload("Sao_Paulo")
    fleet.upload("Amsterdam")
    cities = rows_of(run(runner, fleet, "--sql", "SELECT DISTINCT city FROM sensor_readings ORDER BY city", "--json"))
    assert cities == [{"city": "Amsterdam"}, {"city": "São Paulo"}]
    assert rows_of(run(runner, fleet, "--sql", "SELECT count(*) AS n FROM sensor_readings WHERE city = 'São Paulo'", "--json")) == [{"n": 20}]
    assert rows_of(run(runner, fleet, "--source", "lake", "--count", "--city", spelling, "--json")) == [{"count": 20}]


def test_lake_rows_written_with_safe_names_still_match_and_add_up(runner, fleet):
    # An older lake: rows 1..8 went in under the safe name, rows 9..20 under the display name.
    fleet.upload("Sao_Paulo", upto={"Sao_Paulo_SA00": 8}, lake_city="Sao_Paulo")
    fleet.upload("Sao_Paulo")
    for spelling in ("São Paulo", "Sao_Paulo"):
        assert rows_of(run(runner, fleet, "--source", "lake", "--count", "--city", spelling, "--json")) == [{"count": 20}]
    latest = rows_of(run(runner, fleet, "--source", "lake", "--latest", "--city", "sao-paulo", "--json"))
    assert [(r["sensor_id"], r["seq"]) for r in latest] == [("Sao_Paulo_SA00", 20)]
    assert {city: stats.rows for city, stats in lake.city_stats(lake.open_table(fleet.layout)).items()} == {"Sao_Paulo": 20}


@pytest.mark.parametrize(
    "sql",
    [
        "COPY (SELECT * FROM sensor_readings) TO '{tmp}/out.csv'",
        "ATTACH '{tmp}/other.duckdb' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_parquet('{lake}/**/*.parquet')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
    ],
)
def test_sql_refuses_files_attach_and_extensions(runner, fleet, tmp_path, sql):
    fleet.upload("Amsterdam")
    result = run(runner, fleet, "--sql", sql.format(tmp=tmp_path, lake=fleet.layout.lake))
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: SQL refused: ")
    assert "Traceback" not in result.output
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "other.duckdb").exists()


def test_plot_draws_text_without_colour(runner, fleet):
    result = run(runner, fleet, "--plot", "temperature", "--city", "Amsterdam")
    assert result.exit_code == 0, result.output
    assert "Amsterdam_AM00" in result.output and "Amsterdam_AM01" in result.output and "Sao_Paulo" not in result.output
    assert "temperature" in result.output and "\x1b[" not in result.output
    assert "┤" in result.output  # an axis was drawn


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "yesterday"), "error: --since 'yesterday': use a duration"),
        (("--plot", "colour"), "error: --plot 'colour': choose one of temperature"),
        (("--count", "--latest"), "error: choose one of"),
        (("--limit", "0"), "error: --limit 0: must be at least 1"),
        (("--sql", "SELECT 1", "--source", "edge"), "error: --sql runs over the lake, archive, s3 or cosmos only"),
    ],
)
def test_usage_errors_exit_2(runner, fleet, args, message):
    result = run(runner, fleet, *args)
    assert result.exit_code == 2
    assert result.output.startswith(message)


def test_lake_before_any_upload_says_so(runner, fleet):
    result = run(runner, fleet, "--source", "lake", "--count")
    assert result.exit_code == 1
    assert "no lake table yet" in result.output


def test_the_documented_migration_moves_old_rows_to_display_names(runner, fleet):
    # docs/uploading.md, "Lakes written before display names": the one-off update.
    fleet.upload("Sao_Paulo", upto={"Sao_Paulo_SA00": 8}, lake_city="Sao_Paulo")
    fleet.upload("Sao_Paulo")
    fleet.upload("Amsterdam", lake_city="Amsterdam")
    table = lake.open_table(fleet.layout)
    table.update(predicate="city <> location AND location <> ''", updates={"city": "location"})
    cities = rows_of(run(runner, fleet, "--sql", "SELECT city, count(*) AS n FROM sensor_readings GROUP BY city ORDER BY city", "--json"))
    assert cities == [{"city": "Amsterdam", "n": 40}, {"city": "São Paulo", "n": 20}]

