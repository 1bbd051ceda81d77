"""`query --source archive|s3` answer what `--source lake` answers for the same rows, written by the sinks themselves.

The same batches go through the Delta sink (the project's lake), the Parquet archive sink (the
project's `archive/`) and the S3 sink (moto's server on loopback, both layouts); then every query mode
is asked of each source, in process and through the real launcher (where an early-stopped scan over
arrow's S3 filesystem must not crash the interpreter at exit).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from sensor_manager.cli import app
from sensor_manager.layout import ProjectLayout
from sensor_manager.observe.query import reading_source
from sensor_manager.observe.readings import Filters
from uploader.sinks.delta import DeltaSink
from uploader.sinks.parquet import ParquetArchiveSink, compact
from uploader.sinks.s3 import S3SinkSettings

REPO = Path(__file__).resolve().parents[3]
PREFIX = "sensor-manager"
RANGES = {0: (0, 30), 1: (0, 20), 2: (0, 7)}  # three sensors of New York, rows 1..n each
QUERIES = [
    ("--count",), ("--count", "--sensor-id", "New_York_CD01"), ("--count", "--city", "New York"),
    ("--count", "--since", "2025-06-01T12:00:10+00:00"), ("--latest",), ("--list",), ("--limit", "7"),
    ("--limit", "3", "--sensor", "New_York_AB12"),
    ("--sql", "SELECT sensor_id, count(*) AS n, max(seq) AS last FROM sensor_readings GROUP BY ALL ORDER BY ALL"),
    ("--sql", "SELECT seq FROM sensor_readings ORDER BY timestamp DESC, sensor_id LIMIT 2"),
]


@pytest.fixture
def project(tmp_path: Path, s3, batch_across) -> SimpleNamespace:
    """A project whose lake, archive and bucket (delta layout) hold the same rows; the config names the bucket."""
    from uploader.sinks.s3 import S3Sink

    bucket = s3.new_bucket()
    root = tmp_path / "project"
    root.mkdir()
    (root / "sensor-manager.yaml").write_text(
        f"uploader:\n  sinks:\n    s3:\n      enabled: false\n      bucket: {bucket}\n      prefix: {PREFIX}\n      endpoint_url: {s3.endpoint}\n")
    sinks = [DeltaSink(root / "lake" / "sensor_readings"), ParquetArchiveSink(root / "archive"),
             S3Sink(bucket, PREFIX, layout="delta", endpoint_url=s3.endpoint),
             S3Sink(bucket, "parquet-layout", layout="parquet", endpoint_url=s3.endpoint)]
    for sink in sinks:
        outcome = sink.write(batch_across(RANGES))
        assert outcome.rows == sum(upto for _, upto in RANGES.values()), outcome
    return SimpleNamespace(root=root, bucket=bucket, endpoint=s3.endpoint)


def query(runner, project, *args: str) -> list[dict]:
    result = runner.invoke(app, ["query", "--project-dir", str(project.root), *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["rows"]


@pytest.mark.parametrize("args", QUERIES, ids=" ".join)
def test_archive_and_s3_answer_what_the_lake_answers(runner, project, args):
    expected = query(runner, project, "--source", "lake", *args)
    assert expected not in ([], [{"count": 0}]), "the lake answered nothing: the parity would prove nothing"
    assert query(runner, project, "--source", "archive", *args) == expected
    assert query(runner, project, "--source", "s3", *args) == expected


def test_the_counts_are_the_rows_written(runner, project):
    for source in ("lake", "archive", "s3"):
        assert query(runner, project, "--source", source, "--count") == [{"count": 57}]
        latest = query(runner, project, "--source", source, "--latest")
        assert [(r["sensor_id"], r["seq"]) for r in latest] == [("New_York_AB12", 30), ("New_York_CD01", 20), ("New_York_CD02", 7)]


def test_the_compacted_view_is_not_counted_twice(runner, project):
    assert compact(project.root / "archive")
    assert query(runner, project, "--source", "archive", "--count") == [{"count": 57}]


def test_the_s3_parquet_layout_answers_the_same(project):
    layout = ProjectLayout.at(project.root)
    settings = S3SinkSettings(bucket=project.bucket, prefix="parquet-layout", layout="parquet", endpoint_url=project.endpoint)
    config = SimpleNamespace(uploader=SimpleNamespace(sinks=SimpleNamespace(named={"s3": settings}.__getitem__)))
    bucket = reading_source(layout, None, "s3", config)
    lake = reading_source(layout, None, "lake")
    for ask in (lambda s: s.count(Filters()), lambda s: s.latest(Filters()), lambda s: s.list_sensors(Filters()),
                lambda s: s.readings(Filters(sensor_id="New_York_CD02"), 4)):
        assert ask(bucket) == ask(lake)
    assert bucket.report(Filters())[0].rows == 57


@pytest.mark.parametrize("source", ["archive", "s3"])
def test_before_anything_was_written_it_says_so(runner, tmp_path, s3, source):
    root = tmp_path / "empty"
    root.mkdir()
    (root / "sensor-manager.yaml").write_text(
        f"uploader:\n  sinks:\n    s3:\n      enabled: false\n      bucket: {s3.new_bucket()}\n      endpoint_url: {s3.endpoint}\n")
    result = runner.invoke(app, ["query", "--project-dir", str(root), "--source", source, "--count"])
    # The last line, not the whole output: moto's server logs into the same stderr from its own thread.
    assert result.exit_code == 1, result.output
    last = result.output.splitlines()[-1]
    assert last.startswith("error: ") and "nothing" in last


def test_s3_without_a_bucket_is_a_usage_error(runner, tmp_path):
    result = runner.invoke(app, ["query", "--project-dir", str(tmp_path), "--source", "s3", "--count"])
    assert result.exit_code == 2
    assert result.output.startswith("error: --source s3: uploader.sinks.s3.bucket is not set")


@pytest.mark.parametrize("source", ["lake", "archive", "s3"])
def test_through_the_launcher(project, source):
    """A fresh interpreter per query, exit handlers included: same answers, exit 0, nothing on stderr."""
    answers = []
    for args in (("--count",), ("--latest",), ("--sql", "SELECT * FROM sensor_readings LIMIT 1")):
        done = subprocess.run([sys.executable, str(REPO / "sensor_manager.py"), "query", "--project-dir", str(project.root),
                               "--source", source, *args, "--json"], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "NO_COLOR": "1"})
        assert (done.returncode, done.stderr) == (0, "")
        answers.append(json.loads(done.stdout)["rows"])
    assert answers[0] == [{"count": 57}]
    assert [r["seq"] for r in answers[1]] == [30, 20, 7] and len(answers[2]) == 1
