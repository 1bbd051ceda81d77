"""Delivery rules across sinks: checkpoints move only on Delivered, a failing sink never holds up another,
a Rejected batch goes to the dead letters and the sink moves on."""
from __future__ import annotations

from uploader.deadletter import DeadLetterStore
from uploader.pipeline import Uploader, build_sinks
from uploader.sinks.base import CheckResult, Delivered, Rejected, Retry


class ScriptedSink:
    """A second sink (registered under the parquet settings) whose answers the test chooses."""

    name = "parquet"
    stage = "raw"

    def __init__(self, answer):
        self.answer = answer
        self.rows = 0
        self.calls = 0

    def check(self) -> CheckResult:
        return CheckResult(True, "scripted")

    def resume_from(self, app_id: str):
        return None

    def write(self, batch):
        self.calls += 1
        outcome = self.answer(batch)
        if isinstance(outcome, Delivered):
            self.rows += sum(chunk.num_rows for chunk in batch.stream())
        return outcome


def run(invocation, extra) -> Uploader:
    uploader = Uploader(invocation, sinks=build_sinks(invocation) + [extra])
    try:
        uploader.run_once()
    finally:
        uploader.close()
    return uploader


def test_a_failing_sink_never_holds_up_another(project, sensor_db, invocation, lake_rows):
    sensor_db(project / "data" / "Berlin" / "AA11" / "sensor_data.db").append(500)
    inv = invocation()
    inv.settings.sinks.delta.batch_size = 100
    inv.settings.sinks.parquet.retry.initial_seconds = 0.01
    inv.settings.sinks.parquet.retry.once_max_attempts = 2
    failing = ScriptedSink(lambda batch: Retry("503 from the archive"))
    uploader = run(inv, failing)
    assert lake_rows(inv.table_uri).num_rows == 500
    assert failing.calls == 2 and uploader.sink_status["parquet"].failing_permanently
    assert uploader.sink_status["delta"].rows_shipped == 500 and not uploader.sink_status["delta"].failing_permanently
    assert not uploader.succeeded()
    [source] = uploader.tracked.values()
    assert source.positions == {"delta": 500, "parquet": 0}  # the failing sink's checkpoint never moved


def test_a_rejected_batch_is_dead_lettered_and_the_sink_moves_on(project, sensor_db, invocation):
    sensor_db(project / "data" / "Berlin" / "AA11" / "sensor_data.db").append(30)
    inv = invocation()
    inv.settings.sinks.parquet.batch_size = 10
    refusals = iter([None, Rejected("400: document too large")])  # the second batch is refused

    def answer(batch):
        return next(refusals, None) or Delivered({part.app_id: part.upto for part in batch.parts})

    uploader = run(inv, ScriptedSink(answer))
    dead = DeadLetterStore(inv.state_root / "deadletter").read("parquet")
    assert sorted(dead["source_id"].to_pylist()) == list(range(11, 21))
    assert set(dead["reason"].to_pylist()) == {"rejected by parquet: 400: document too large"}
    [source] = uploader.tracked.values()
    assert source.positions["parquet"] == 30 and uploader.sink_status["parquet"].dead_lettered == 10
    from uploader.checkpoints import CheckpointStore, checkpoint_path

    store = CheckpointStore(checkpoint_path(inv.state_root, inv.uploader_id))
    assert store.get("parquet", uploader.namespace.app_id(source.source.key)) == 30


def test_a_refused_multi_source_batch_is_retried_source_by_source_and_only_the_culprit_dead_lettered(
        project, sensor_db, invocation):
    for code in ("AA11", "BB22", "CC33"):
        sensor_db(project / "data" / "Berlin" / code / "sensor_data.db", sensor_id=f"Berlin_{code}").append(20)
    sizes = []

    def answer(batch):
        sizes.append(len(batch.parts))
        if any("BB22" in part.lineage.source for part in batch.parts):
            return Rejected("400: BB22 is malformed")
        return Delivered({part.app_id: part.upto for part in batch.parts})

    inv = invocation()
    sink = ScriptedSink(answer)
    uploader = run(inv, sink)
    assert sizes[0] == 3 and all(size == 1 for size in sizes[1:])  # refused together, then one by one
    dead = DeadLetterStore(inv.state_root / "deadletter").read("parquet")
    assert set(dead["source"].to_pylist()) == {"Berlin/BB22/sensor_data.db"} and dead.num_rows == 20
    assert sink.rows == 40 and uploader.sink_status["parquet"].dead_lettered == 20
    assert all(t.positions == {"delta": 20, "parquet": 20} for t in uploader.tracked.values())
