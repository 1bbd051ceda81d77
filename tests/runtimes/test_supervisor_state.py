"""state/supervisor.json through its model: written and read back equal, older files still read."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor_manager.runtimes import supervisor as sv

optional_texts = st.none() | st.text(max_size=12)
counts = st.integers(min_value=0, max_value=2**31)

entries = st.builds(sv.ServiceEntry, state=st.sampled_from(["running", "stopped", "restarting", "crashloop"]),
                    desired=st.sampled_from([None, "running", "stopped"]), pid=st.none() | counts,
                    create_time=st.none() | st.floats(min_value=0, max_value=2e9), started_at=optional_texts,
                    restarts=counts, exit_code=st.none() | st.integers(-64, 255), restart_token=counts)
states = st.builds(sv.SupervisorState, updated_at=optional_texts, updated_at_epoch=st.floats(min_value=0, max_value=2e9),
                   supervisor=st.none() | st.fixed_dictionaries({"pid": counts, "create_time": st.floats(0, 2e9),
                                                                 "cmdline": st.lists(st.text(max_size=8), max_size=3),
                                                                 "started_at": optional_texts}),
                   generation_seen=st.integers(-1, 2**31), stopping=st.booleans(), write_error=optional_texts,
                   services=st.dictionaries(st.text(max_size=12), entries, max_size=4))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(state=states)
def test_what_is_written_reads_back_equal(tmp_path, state):
    path = tmp_path / "supervisor.json"
    sv.write_json_atomic(path, state.model_dump(mode="json"))
    assert sv.SupervisorState.read(path) == state
    assert list(json.loads(path.read_text())) == ["schema_version", "updated_at", "updated_at_epoch", "supervisor",
                                                  "generation_seen", "stopping", "write_error", "services"]


def test_a_file_from_before_the_model_reads(tmp_path):
    """No schema_version, a service with only some fields, and a key a newer writer added."""
    path = tmp_path / "supervisor.json"
    path.write_text(json.dumps({"supervisor": {"pid": 7, "create_time": 1.0}, "generation_seen": 3, "future": 1,
                                "services": {"sensor-berlin": {"state": "running", "pid": 8}}}))
    state = sv.SupervisorState.read(path)
    assert (state.schema_version, state.generation_seen, state.write_error) == (1, 3, None)
    assert state.services["sensor-berlin"] == sv.ServiceEntry(state="running", pid=8)


def test_a_missing_or_foreign_file_reads_as_no_supervisor(tmp_path):
    path = tmp_path / "supervisor.json"
    assert sv.SupervisorState.read(path) == sv.SupervisorState()
    path.write_text(json.dumps({"services": ["a"]}))
    assert sv.SupervisorState.read(path) == sv.SupervisorState()
