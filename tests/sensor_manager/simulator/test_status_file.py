"""The simulator status file model: what the simulator writes is what the monitor and health checks
read, and files written before the model existed still read."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from sensor_manager.simulator.status_file import SensorEntry, SimulatorStatus, is_healthy

texts = st.text(max_size=12)
optional_texts = st.none() | texts
counts = st.integers(min_value=0, max_value=2**53)

entries = st.builds(SensorEntry, db_path=optional_texts, rows_written=counts, seq=st.none() | counts,
                    last_timestamp=optional_texts, readings_per_second=st.floats(min_value=0, max_value=1e6),
                    errors=counts, last_error=optional_texts, skipped_readings=counts,
                    active_anomaly=st.sampled_from([None, "spike", "drift", "dropout"]), generation=optional_texts)
statuses = st.builds(SimulatorStatus, name=optional_texts,
                     state=st.sampled_from(["starting", "backfilling", "running", "stopped", "failed"]),
                     fatal_error=optional_texts, shards=st.none() | st.integers(min_value=1, max_value=64),
                     interval_seconds=st.floats(min_value=0.1, max_value=3600),
                     sensors=st.dictionaries(texts, entries, max_size=4))

# The keys every simulator status file had before the model (`shards` only in a file merged from shards).
LEGACY_KEYS = {"schema_version", "updated_at", "updated_at_epoch", "pid", "interval_seconds", "role", "name", "state",
               "fatal_error", "sensors"}
LEGACY_ENTRY_KEYS = {"db_path", "generation", "rows_written", "seq", "last_timestamp", "readings_per_second", "errors",
                     "last_error", "skipped_readings", "active_anomaly"}
# Keys added since, for live changes (docs/live-changes.md): a shape change only adds keys.
LIVE_KEYS = {"applied_settings", "rejected_settings", "injections"}
LIVE_ENTRY_KEYS = {"firmware_version", "identity_since_seq", "identity_since"}


@settings(max_examples=60, deadline=None)
@given(statuses)
def test_what_is_written_reads_back_equal(status):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sensor-x.json"
        status.write(path)
        read = SimulatorStatus.read(path)
        written = json.loads(path.read_text())
    assert read == status.model_copy(update={key: getattr(read, key) for key in ("updated_at", "updated_at_epoch", "pid")})
    assert set(written) == LEGACY_KEYS | LIVE_KEYS | ({"shards"} if status.shards is not None else set())
    assert all(set(entry) == LEGACY_ENTRY_KEYS | LIVE_ENTRY_KEYS for entry in written["sensors"].values())


def test_a_file_from_before_the_model_reads(tmp_path):
    """No schema_version, an entry with only some counters, and keys a newer writer added."""
    path = tmp_path / "sensor-berlin.json"
    path.write_text(json.dumps({
        "updated_at": "2026-11-30T10:00:00.000+00:00", "updated_at_epoch": 1.8e9, "pid": 42, "interval_seconds": 5,
        "role": "sensor", "name": "sensor-berlin", "state": "running", "fatal_error": None, "future_key": {},
        "sensors": {"Berlin_AB12": {"rows_written": 3, "seq": 3, "future_counter": 1}},
    }))
    status = SimulatorStatus.read(path)
    assert status is not None and status.schema_version == 1
    assert status.sensors["Berlin_AB12"] == SensorEntry(rows_written=3, seq=3)
    assert is_healthy(path, now=1.8e9) == (True, f"{path}: running, 1 sensors")
    assert is_healthy(path, now=1.8e9 + 16) == (False, f"{path}: stale (updated 2026-11-30T10:00:00.000+00:00, interval 5.0 s)")
