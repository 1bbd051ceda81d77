"""The uploader status file model: what the pipeline writes is what the monitor reads, and files
written before the model existed still read."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from fleetcore.statusfiles import SCHEMA_VERSION
from uploader.status_file import SinkStatus, SourceStatus, UploaderStatus, check_health

texts = st.text(max_size=12)
optional_texts = st.none() | texts
counts = st.integers(min_value=0, max_value=2**53)
seconds = st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False)

sinks = st.builds(SinkStatus, rows_shipped=counts, lag_rows=counts, lag_seconds=seconds, last_success=optional_texts,
                  last_error=optional_texts, retries=counts, dead_lettered=counts, failing_permanently=st.booleans())
sources = st.builds(SourceStatus, source=texts, generation=optional_texts, sensor_id=optional_texts, shape=optional_texts,
                    end_id=counts, positions=st.dictionaries(texts, counts, max_size=3), locked=st.booleans(),
                    skipped=optional_texts, error=optional_texts)
statuses = st.builds(UploaderStatus, name=optional_texts, uploader_id=optional_texts,
                     state=st.sampled_from(["starting", "running", "idle", "failing", "stopped"]),
                     interval_seconds=st.floats(min_value=0.1, max_value=3600),
                     sinks=st.dictionaries(texts, sinks, max_size=3), sources=st.lists(sources, max_size=3),
                     project=optional_texts, fleet_epoch=st.none() | counts, mode=st.sampled_from([None, "continuous", "once"]),
                     lake=optional_texts, data=optional_texts)

# The keys every uploader status file had before the model: the contract readers outside this repo rely on.
LEGACY_KEYS = {"schema_version", "updated_at", "updated_at_epoch", "pid", "interval_seconds", "role", "name", "uploader_id",
               "state", "sinks", "sources", "project", "fleet_epoch", "mode", "lake", "data"}
LEGACY_SINK_KEYS = {"rows_shipped", "lag_rows", "lag_seconds", "last_success", "last_error", "retries", "dead_lettered",
                    "failing_permanently"}
# Added since, for settings changes applied while running (docs/stages.md).
SETTINGS_KEYS = {"applied_settings", "rejected_settings", "stage_switches"}
# Added since: a sink's service figures (Cosmos DB request units and throttling; null for the other sinks).
SERVICE_SINK_KEYS = {"request_units", "request_units_per_second", "throttled"}
LEGACY_SOURCE_KEYS = {"source", "generation", "sensor_id", "shape", "end_id", "positions", "locked", "skipped", "error"}


@settings(max_examples=60, deadline=None)
@given(statuses)
def test_what_is_written_reads_back_equal(status):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "uploader-x.json"
        status.write(path)
        read = UploaderStatus.read(path)
        written = json.loads(path.read_text())
    assert read is not None
    assert read.payload() == status.payload()
    assert read.interval_seconds == status.interval_seconds
    assert read.schema_version == SCHEMA_VERSION
    assert set(written) == LEGACY_KEYS | SETTINGS_KEYS
    assert all(set(sink) == LEGACY_SINK_KEYS | {"stage"} | SERVICE_SINK_KEYS for sink in written["sinks"].values())
    assert all(set(source) == LEGACY_SOURCE_KEYS for source in written["sources"])


def test_a_file_from_before_the_model_reads(tmp_path):
    """No schema_version, a sink with only some figures, and keys a newer writer added."""
    path = tmp_path / "uploader-berlin.json"
    path.write_text(json.dumps({
        "updated_at": "2026-11-30T10:00:00.000+00:00", "updated_at_epoch": 1.8e9, "pid": 42, "interval_seconds": 5,
        "role": "uploader", "uploader_id": "berlin", "state": "running", "future_key": [1, 2],
        "sinks": {"delta": {"rows_shipped": 7, "failing_permanently": True, "future_figure": 1}},
        "sources": [{"source": "data/Berlin/AB12/sensor_data.db", "positions": {"delta": 7}}],
    }))
    status = UploaderStatus.read(path)
    assert status is not None
    assert status.schema_version == 1
    assert status.sinks["delta"].rows_shipped == 7 and status.sinks["delta"].lag_rows == 0
    assert status.sources[0].positions == {"delta": 7} and status.sources[0].generation is None
    assert check_health(path, now=1.8e9) == (False, f"{path}: sink delta failing permanently")


def test_a_file_of_another_shape_reads_as_none(tmp_path):
    path = tmp_path / "uploader-berlin.json"
    path.write_text(json.dumps({"sinks": ["delta"]}))
    assert UploaderStatus.read(path) is None
    assert check_health(path) == (False, f"{path}: no readable status file")
