"""state/runtime.json through its model: written and read back equal, older files still read."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor_manager.layout import ProjectLayout
from sensor_manager.runtimes import RUNTIME_SCHEMA_VERSION, read_runtime_record, record_runtime


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["local", "docker"]), reason=st.text(max_size=40))
def test_what_is_recorded_reads_back(project_dir, name, reason):
    layout = ProjectLayout.at(project_dir)
    record_runtime(layout, name, reason)
    record = read_runtime_record(layout)
    assert record is not None
    assert (record.schema_version, record.runtime, record.reason) == (RUNTIME_SCHEMA_VERSION, name, reason)
    assert list(json.loads(layout.runtime_file.read_text())) == ["schema_version", "runtime", "started_at", "reason"]


def test_a_record_without_version_reads_and_a_foreign_one_does_not(project_dir):
    layout = ProjectLayout.at(project_dir)
    layout.runtime_file.parent.mkdir(parents=True, exist_ok=True)
    layout.runtime_file.write_text(json.dumps({"runtime": "docker", "started_at": "2026-01-01T00:00:00+00:00", "extra": 1}))
    record = read_runtime_record(layout)
    assert record is not None and (record.schema_version, record.runtime, record.reason) == (1, "docker", "")
    layout.runtime_file.write_text(json.dumps({"runtime": "bacalhau"}))
    assert read_runtime_record(layout) is None
    layout.runtime_file.write_text("[1, 2]")
    assert read_runtime_record(layout) is None
