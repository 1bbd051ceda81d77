"""Every command as a real process, many times, against a running fleet whose uploaders write the lake.

Crashes at interpreter exit (arrow's thread pool shut down after Python finalized) and hangs cannot be
seen through typer's CliRunner, where the interpreter never exits. Each command must exit with its
documented code within the timeout, every time, with nothing alarming on stderr.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import ProcessFleet, Run, run_cli

ARROW_RUNS = 20  # commands that open the lake with pyarrow, deltalake or DuckDB
PLAIN_RUNS = 4  # commands that never read the lake
PARALLEL = 3
TIMEOUT = 120  # generous: the default run shares 2 cores; a hang still fails
pytestmark = pytest.mark.timeout(900)  # 20 runs, plus starting the shared fleet for the first test

LIMITED_SQL = "SELECT * FROM sensor_readings LIMIT 1"
FULL_SQL = "SELECT city, count(*) AS n, max(seq) AS last FROM sensor_readings GROUP BY city ORDER BY city"

# (name, argv after the command's project flags, expected exit code, runs)
COMMANDS = [
    ("sql-limit", ["query", "--sql", LIMITED_SQL, "--format", "json"], 0, ARROW_RUNS),
    ("sql-full", ["query", "--sql", FULL_SQL, "--json"], 0, ARROW_RUNS),
    ("lake-readings", ["query", "--source", "lake", "--limit", "5"], 0, ARROW_RUNS),
    ("lake-latest", ["query", "--source", "lake", "--latest", "--json"], 0, ARROW_RUNS),
    ("lake-plot", ["query", "--source", "lake", "--plot", "temperature", "--limit", "200"], 0, ARROW_RUNS),
    ("lake-all", ["query", "--source", "lake", "--all", "--json"], 0, ARROW_RUNS),
    ("monitor", ["monitor", "--once", "--json"], 0, ARROW_RUNS),
    ("diagnostics", ["diagnostics", "--json"], 0, ARROW_RUNS),
    ("clean-dry-run", ["clean", "--dry-run"], 0, ARROW_RUNS),
    ("edge-readings", ["query", "--limit", "5", "--json"], 0, PLAIN_RUNS),
    ("edge-latest", ["query", "--latest"], 0, PLAIN_RUNS),
    ("edge-plot", ["query", "--plot", "humidity"], 0, PLAIN_RUNS),
    ("plan", ["plan"], 0, PLAIN_RUNS),
    ("status", ["status"], 0, PLAIN_RUNS),
    ("logs", ["logs", "--tail", "5"], 0, PLAIN_RUNS),
    ("config-validate", ["config", "validate"], 0, PLAIN_RUNS),
    ("bad-flag", ["query", "--limit", "0"], 2, PLAIN_RUNS),
]


def _repeat(runs: int, one) -> list[Run]:
    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(lambda _: one(), range(runs)))


def _failures(results: list[Run], expected: int) -> list[str]:
    return [f"exit {r.code if r.code is not None else 'timeout'}{f' ({r.crash})' if r.crash else ''}: {r.stderr.strip()[-300:]}"
            for r in results if r.code != expected or r.crash]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "argv", "expected", "runs"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_command_exits_cleanly_every_time(process_fleet: ProcessFleet, name, argv, expected, runs):
    project = ["--project-dir", str(process_fleet.root)]
    results = _repeat(runs, lambda: run_cli(*argv[:2 if argv[0] == "config" else 1], *project, *argv[2 if argv[0] == "config" else 1:], timeout=TIMEOUT))
    failures = _failures(results, expected)
    assert not failures, f"{name}: {len(failures)} of {runs} runs failed:\n" + "\n".join(failures)
    assert all(r.stdout.strip() for r in results if expected == 0), f"{name}: a run printed nothing"


@pytest.mark.slow
def test_upload_once_into_the_fleet_lake_exits_cleanly_every_time(process_fleet: ProcessFleet):
    """Another project's uploader ships into the lake the fleet's uploaders are writing."""
    side = process_fleet.side
    argv = ["upload", "--once", "--project-dir", str(side), "--sqlite", str(side / "data"), "--lake", str(process_fleet.lake)]
    # One after another: a second uploader with the same id beside a running one is refused by design (exit 1).
    results = [run_cli(*argv, timeout=TIMEOUT) for _ in range(ARROW_RUNS // 2)]
    failures = _failures(results, 0)
    assert not failures, f"upload --once: {len(failures)} runs failed:\n" + "\n".join(failures)
