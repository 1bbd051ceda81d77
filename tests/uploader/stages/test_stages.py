"""The schematized, sanitized and aggregated stages on chunks shaped like the source's."""
from __future__ import annotations

import re

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uploader.schema import AGGREGATE_SCHEMA, CANONICAL_SCHEMA
from uploader.stages.aggregate import AggregateStage, Windows
from uploader.stages.sanitize import SanitizedStage, coarsen, read_hash_key
from uploader.stages.schematize import SchematizedStage

from .test_raw import LINEAGE, chunk

T0 = 1_748_779_200_000_000  # 2025-06-01T12:00:00Z in µs


def test_schematized_dead_letters_rows_it_cannot_type_and_keeps_missing_values_missing():
    kept, rejected = SchematizedStage().apply(chunk(
        latitude=[52.5, 123.4, 52.5, 52.5], longitude=[13.4, 13.4, 13.4, -200.0],
        temperature=[21.0, 21.0, float("inf"), None], status_code=[0, 0, 0, 0], anomaly_flag=[0, 0, 0, 0]), LINEAGE)
    assert {r.source_id: r.reason for r in rejected} == {
        2: "latitude outside ±90", 3: "non-finite temperature", 4: "longitude outside ±180"}
    assert kept.schema == CANONICAL_SCHEMA and kept.column("source_id").to_pylist() == [1]
    assert kept.column("stage").to_pylist() == ["schematized"]
    kept, rejected = SchematizedStage().apply(chunk(temperature=[None], status_code=[None], anomaly_flag=[0]), LINEAGE)
    assert kept is None and [r.reason for r in rejected] == ["missing status_code"]


def test_sanitized_coarsens_coordinates_hashes_identity_and_drops_columns(tmp_path):
    key = read_hash_key(tmp_path / "secrets" / "k.key")
    assert read_hash_key(tmp_path / "secrets" / "k.key") == key and oct((tmp_path / "secrets" / "k.key").stat().st_mode)[-3:] == "400"
    stage = SanitizedStage(key, coordinate_decimals=3, drop=("firmware_version",))
    kept, rejected = stage.apply(chunk(latitude=[52.520008, -33.868820], longitude=[13.404954, 151.209296],
                                       location=["Berlin (52.520008, 13.404954)", "Sydney near 151.2092961"],
                                       serial_number=["SN-123456", "SN-123456"], instance_id=["i-1", None],
                                       firmware_version=["1.4.0", "1.4.0"]), LINEAGE)
    rows = kept.to_pylist()
    assert not rejected and [(r["latitude"], r["longitude"]) for r in rows] == [(52.52, 13.405), (-33.869, 151.209)]
    assert [r["location"] for r in rows] == ["Berlin", "Sydney near 151.209"]
    assert rows[0]["serial_number"] == rows[1]["serial_number"] != "SN-123456" and len(rows[0]["serial_number"]) == 16
    assert rows[1]["instance_id"] is None and rows[0]["firmware_version"] is None and rows[0]["stage"] == "sanitized"
    other = SanitizedStage(b"another key of enough bytes", 3).apply(chunk(serial_number=["SN-123456"]), LINEAGE)[0]
    assert other.column("serial_number")[0].as_py() != rows[0]["serial_number"]  # keyed: not a plain hash


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-180, 180, allow_nan=False), min_size=1, max_size=20), st.integers(0, 6))
def test_coarsened_coordinates_print_with_at_most_the_configured_decimals(values, decimals):
    for value in coarsen(pa.array(values, pa.float64()), decimals).to_pylist():
        fraction = repr(value).split("e")[0].partition(".")[2]
        assert len(fraction.rstrip("0")) <= decimals, (value, decimals)


def test_a_hash_key_that_cannot_be_made_is_one_config_error(tmp_path):
    from fleetcore.errors import ConfigError

    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="hash_key_file"):
        read_hash_key(tmp_path / "file" / "k.key")


def _rows(seconds: list[float], temperatures: list[float | None], start_id: int = 1) -> pa.RecordBatch:
    n = len(seconds)
    return chunk(source_id=list(range(start_id, start_id + n)), seq=list(range(start_id, start_id + n)),
                 ts_us=[T0 + int(s * 1_000_000) for s in seconds], temperature=temperatures,
                 anomaly_flag=[int(t is None) for t in temperatures], status_code=[0] * n)


def test_a_window_is_emitted_once_when_the_watermark_passes_its_end_and_late_rows_go_aside():
    stage = AggregateStage(60, 5, "1m")
    windows = Windows()
    emitted, rejected = stage.fold(windows, _rows([0, 10, 59, 62], [1.0, 3.0, None, 10.0]), LINEAGE)
    assert emitted is None and not rejected  # 62 s - 5 s lateness has not passed 60 s
    emitted, rejected = stage.fold(windows, _rows([58, 66, 30], [5.0, 7.0, 9.0], start_id=5), LINEAGE)
    assert [r.source_id for r in rejected] == [7] and "late" in rejected[0].reason  # 30 s came after the watermark passed 60 s
    [window] = emitted.to_pylist()
    assert emitted.schema == AGGREGATE_SCHEMA
    assert (window["rows"], window["temperature_count"], window["temperature_min"], window["temperature_max"],
            window["temperature_mean"], window["anomaly_count"], window["first_seq"], window["last_seq"]) == (
        4, 3, 1.0, 5.0, 3.0, 1, 1, 5)
    assert window["window"] == "1m" and window["window_end"].timestamp() - window["window_start"].timestamp() == 60
    emitted, _ = stage.fold(windows, _rows([70], [1.0], start_id=8), LINEAGE)
    assert emitted is None  # the first window is not emitted twice


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 600), st.floats(-50, 50)), min_size=1, max_size=80), st.integers(1, 20))
def test_batch_boundaries_and_saved_state_never_change_what_is_emitted(readings, split):
    stage = AggregateStage(60, 10, "1m")
    seconds, temperatures = [s for s, _ in readings], [t for _, t in readings]

    def run(cuts: list[int]) -> tuple[list, list]:
        windows, out, late = Windows(), [], []
        for low, high in zip([0, *cuts], [*cuts, len(readings)], strict=True):
            if low == high:
                continue
            windows = Windows.from_bytes(windows.to_bytes())  # as if restarted from the checkpoint store
            emitted, rejected = stage.fold(windows, _rows(seconds[low:high], temperatures[low:high], start_id=low + 1), LINEAGE)
            out += emitted.to_pylist() if emitted is not None else []
            late += [r.source_id for r in rejected]
        return out, late

    whole, late_whole = run([])
    parts, late_parts = run(list(range(split, len(readings), split)))
    assert late_whole == late_parts
    assert [(w["window_start"], w["rows"], w["temperature_min"], w["temperature_max"]) for w in whole] == [
        (w["window_start"], w["rows"], w["temperature_min"], w["temperature_max"]) for w in parts]
    for a, b in zip(whole, parts, strict=True):
        assert a["temperature_mean"] == pytest.approx(b["temperature_mean"])
    starts = [w["window_start"] for w in whole]
    assert len(starts) == len(set(starts))
    assert sum(w["rows"] for w in whole) + len(late_whole) <= len(readings)


def test_sanitized_output_has_no_number_longer_than_the_precision_in_any_text_column(tmp_path):
    stage = SanitizedStage(read_hash_key(tmp_path / "k"), coordinate_decimals=2)
    kept, _ = stage.apply(chunk(latitude=[40.712776], longitude=[-74.005974], location=["NY (40.712776, -74.005974)"],
                                serial_number=["SN-99"]), LINEAGE)
    for name in kept.schema.names:
        for value in kept.column(name).to_pylist():
            assert "SN-99" not in str(value)
            if name not in ("temperature", "humidity", "pressure", "vibration", "voltage"):
                assert not re.search(r"\d+\.\d{3,}", str(value)), (name, value)


@pytest.mark.parametrize(("window", "seconds", "table"), [("1m", 60, "_1m"), ("5m", 300, "_5m"), ("1h", 3600, "_1h"),
                                                          ("90s", 90, "_90s"), ("1h30m", 5400, "_90m"), ("120", 120, "_2m")])
def test_windows_parse_with_the_one_duration_grammar_and_name_their_table(window, seconds, table):
    from uploader.settings import AggregatedSettings

    settings = AggregatedSettings(window=window)
    assert (settings.window_seconds, settings.table_suffix) == (seconds, table)


@pytest.mark.parametrize(("uploader", "message"), [
    ({"aggregated": {"window": "5x"}}, "uploader.aggregated.window: Value error, '5x': use a duration like 90s"),
    ({"aggregated": {"window": "1.5s"}}, "uploader.aggregated.window: Value error, a whole number of seconds"),
    ({"sanitized": {"drop": ["seq"]}}, "uploader.sanitized.drop: Value error, 'seq' is part of a row's key"),
    ({"sanitized": {"drop": ["nope"]}}, "uploader.sanitized.drop: Value error, no such column 'nope'"),
    ({"stage": "aggregated", "sinks": {"parquet": {"enabled": True}}},
     "uploader: Value error, stage: aggregated output cannot go to the parquet sink (it takes raw, sanitized, schematized); "
     "give uploader.sinks.parquet.stage one of those"),
    ({"sinks": {"s3": {"enabled": True, "stage": "aggregated", "bucket": "my-bucket"}}},
     "uploader: Value error, sinks.s3.stage: the s3 sink cannot hold aggregated output"),
])
def test_stage_settings_that_cannot_work_are_one_error_naming_the_key(tmp_path, uploader, message):
    import json

    from fleetcore.errors import ConfigError
    from uploader.settings import read_settings_file

    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"uploader": uploader}))
    with pytest.raises(ConfigError) as raised:
        read_settings_file(path)
    assert raised.value.problems[0].startswith(f"{path}: {message}")


def test_uploaders_making_the_hash_key_at_once_agree_on_one(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "checkpoints" / "sanitize-hash.key"
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: read_hash_key(path), range(32)))
    assert len(keys) == 1 and [p.name for p in path.parent.iterdir()] == ["sanitize-hash.key"]
