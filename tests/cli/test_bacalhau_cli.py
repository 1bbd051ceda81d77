"""`bacalhau render|validate|submit|status` as real processes: exit codes, stdout/stderr, never a traceback.

`submit` and `status` run against the executable stand-in in tests/runtimes/bacalhau_standin (no
Bacalhau CLI or cluster exists here)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "sensor_manager.py"
STANDIN = REPO / "tests" / "runtimes" / "bacalhau_standin"
CITIES = ("amsterdam", "berlin", "london", "new-york", "tokyo")


def run(project: Path, *args: str, path: str | None = None, log: Path | None = None,
        extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENSOR_MANAGER_", "BACALHAU_"))}
    env.update(NO_COLOR="1", PATH=path or "/usr/bin:/bin")
    if log:
        env["BACALHAU_STANDIN_LOG"] = str(log)
    env.update(extra or {})
    done = subprocess.run([sys.executable, str(LAUNCHER), "--project-dir", str(project), "bacalhau", *args],
                          capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def rendered(project_dir: Path) -> Path:
    done = run(project_dir, "render", "--tag", "t1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(project_dir / "state" / "bacalhau" / f"{city}.yaml") for city in CITIES]
    return project_dir


def test_render_then_validate_pass_for_the_default_plan(rendered):
    done = run(rendered, "validate")
    assert done.returncode == 0 and done.stdout == ""
    assert done.stderr.count("is valid.") == len(CITIES)


def test_render_refuses_a_relative_node_root_and_writes_nothing(project_dir):
    before = _listing(project_dir)
    done = run(project_dir, "render", "--tag", "t1", "--node-root", "srv/sensors")
    assert (done.returncode, done.stderr) == (2, "error: --node-root 'srv/sensors': must be an absolute path on the nodes\n")
    assert _listing(project_dir) == before


def test_validate_an_invalid_spec_exits_2_with_one_line_per_problem(rendered):
    spec = rendered / "state" / "bacalhau" / "berlin.yaml"
    spec.write_text(spec.read_text().replace("Type: daemon", "Type: cron").replace("Constraints:", "Contraints:"))
    done = run(rendered, "validate", "--json", str(spec))
    assert done.returncode == 2
    assert json.loads(done.stdout)["errors"] == [
        f"{spec}: Type: job Type 'cron' is not one of batch, ops, daemon, service",
        f"{spec}: Contraints: unknown key; did you mean 'Constraints'?",
    ]
    assert done.stderr.splitlines()[0] == f"error: {spec}: Type: job Type 'cron' is not one of batch, ops, daemon, service"


def test_validate_without_specs_names_render(project_dir):
    done = run(project_dir, "validate")
    assert done.returncode == 2
    assert done.stderr == f"error: {project_dir / 'state' / 'bacalhau'}: no job specs; run `bacalhau render` first\n"


def test_submit_dry_run_prints_the_commands_without_a_cli(rendered):
    done = run(rendered, "submit", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"bacalhau job run --wait=false --id-only {rendered / 'state' / 'bacalhau' / f'{city}.yaml'}" for city in CITIES
    ]


def test_submit_without_a_cli_exits_2_naming_the_remedy(rendered):
    done = run(rendered, "submit")
    assert done.returncode == 2
    assert done.stderr.startswith("error: no `bacalhau` CLI on PATH; install the Bacalhau CLI")
    assert "--dry-run" in done.stderr


def test_submit_and_status_through_the_standin(rendered, tmp_path):
    log = tmp_path / "argv.jsonl"
    path = f"{STANDIN}{os.pathsep}/usr/bin:/bin"
    submitted = run(rendered, "submit", "--json", path=path, log=log)
    assert submitted.returncode == 0, submitted.stderr
    jobs = json.loads(submitted.stdout)["jobs"]
    assert sorted(jobs) == [f"{city}.yaml" for city in CITIES]
    status = run(rendered, "status", path=path, log=log)
    assert status.returncode == 0, status.stderr
    rows = [line.split("  ") for line in status.stdout.splitlines()]
    assert [(row[0], row[1]) for row in rows] == [(f"sensor-demo-{city}", jobs[f"{city}.yaml"]) for city in CITIES]
    assert {(row[2], row[3]) for row in rows} == {("Running", "n-edge-amsterdam-1=Running")}
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [call[:2] for call in calls] == [["job", "run"]] * 5 + [["job", "describe"]] * 5


def test_a_failing_orchestrator_exits_1_with_its_message(rendered, tmp_path):
    done = run(rendered, "submit", path=f"{STANDIN}{os.pathsep}/usr/bin:/bin", log=tmp_path / "argv.jsonl",
               extra={"BACALHAU_STANDIN_FAIL": "1"})
    assert done.returncode == 1
    assert done.stderr.startswith("error: `bacalhau job run` failed (exit 1): Error: failed to connect")


def test_render_without_tag_or_engine_exits_3_asking_for_a_tag(project_dir):
    done = run(project_dir, "render", extra={"DOCKER_HOST": f"unix://{project_dir}/no-engine.sock"})
    assert done.returncode == 3, done.stderr
    assert done.stderr.rstrip().endswith("the image tag hashes the base image, so without an engine pass --tag T")
