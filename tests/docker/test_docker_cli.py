"""`build`, `compose` and the docker lifecycle through the CLI; engine detection without an engine."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import yaml

from fleetcore.errors import EngineUnavailableError
from sensor_manager.cli import app
from sensor_manager.runtimes import engine

NO_ENGINE = "unix:///nonexistent/docker.sock"


@pytest.fixture
def no_engine(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)


def _compose(runner, project_dir, *args):
    return runner.invoke(app, ["compose", "--project-dir", str(project_dir), "--cities", "Amsterdam,Berlin",
                               "--sensors-per-city", "2", *args])


def test_compose_with_a_tag_renders_without_an_engine(runner, project_dir, no_engine):
    result = _compose(runner, project_dir, "--tag", "t1", "-p", "demo_1", "--output", str(project_dir / "stack.yml"))
    assert result.exit_code == 0, result.output
    paths = result.stdout.split()
    assert paths == [str(project_dir / "state/compose/docker-compose.yml"), str(project_dir / "stack.yml")]
    document = yaml.safe_load(Path(paths[0]).read_text())
    assert document["name"] == "demo_1" and len(document["services"]) == 6
    assert {spec["image"] for spec in document["services"].values()} == {"sensor-manager:t1"}
    assert Path(paths[1]).read_text() == Path(paths[0]).read_text()
    assert "Traceback" not in result.output


def test_compose_json_names_the_project_and_services(runner, project_dir, no_engine):
    result = _compose(runner, project_dir, "--tag", "t1", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["project_name"].startswith("sm-project-")
    assert document["services"][-2:] == ["uploader-amsterdam", "uploader-berlin"]


def test_compose_dry_run_prints_the_stack_and_writes_nothing(runner, project_dir, no_engine, tree_listing):
    before = tree_listing(project_dir)
    result = _compose(runner, project_dir, "--tag", "t1", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "sensor-amsterdam-" in result.stdout and yaml.safe_load(result.stdout)["services"]
    assert tree_listing(project_dir) == before


def test_compose_without_engine_or_tag_exits_3(runner, project_dir, no_engine):
    result = _compose(runner, project_dir)
    assert result.exit_code == 3
    assert result.stderr.startswith("error: no Docker engine answers") and "--tag T" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["-p", "Bad Name", "--tag", "t"], "error: --project-name 'Bad Name': a compose project name"),
    (["--tag", "latest"], "error: --tag 'latest'"),
])
def test_compose_rejects_bad_names_with_exit_2(runner, project_dir, no_engine, tree_listing, args, message):
    before = tree_listing(project_dir)
    result = _compose(runner, project_dir, *args)
    assert result.exit_code == 2 and result.stderr.startswith(message), result.output
    assert tree_listing(project_dir) == before


@pytest.mark.parametrize(("args", "message"), [
    (["--push"], "error: --push and --registry go together"),
    (["--registry", "r.example"], "error: --push and --registry go together"),
    (["--tag", "a", "--no-tag"], "error: --tag and --no-tag exclude each other"),
])
def test_build_flag_mistakes_exit_2(runner, project_dir, no_engine, args, message):
    result = runner.invoke(app, ["build", "--project-dir", str(project_dir), *args])
    assert result.exit_code == 2 and result.stderr.startswith(message), result.output


def test_build_without_engine_exits_3(runner, project_dir, no_engine):
    result = runner.invoke(app, ["build", "--project-dir", str(project_dir)])
    assert result.exit_code == 3 and "no Docker engine answers" in result.stderr


def test_engine_available_says_why_not(no_engine):
    ok, why = engine.engine_available()
    assert ok is False and "no Docker engine answers" in why


def _fake(bin_dir: Path, name: str, script: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_compose_v1_is_refused_clearly(tmp_path, monkeypatch):
    _fake(tmp_path, "docker", "exit 1\n")  # no compose plugin
    _fake(tmp_path, "docker-compose", 'echo "1.29.2"\n')
    monkeypatch.setenv("PATH", str(tmp_path))
    engine.compose_command.cache_clear()
    try:
        with pytest.raises(EngineUnavailableError, match="Compose v1 is not supported"):
            engine.compose_command()
    finally:
        engine.compose_command.cache_clear()


def test_standalone_compose_v2_is_accepted(tmp_path, monkeypatch):
    _fake(tmp_path, "docker", "exit 1\n")
    _fake(tmp_path, "docker-compose", 'echo "v2.27.0"\n')
    monkeypatch.setenv("PATH", str(tmp_path))
    engine.compose_command.cache_clear()
    try:
        assert engine.compose_command() == ("docker-compose",)
    finally:
        engine.compose_command.cache_clear()


@pytest.mark.docker
@pytest.mark.slow
def test_build_reports_an_up_to_date_image(runner, project_dir, project_image):
    result = runner.invoke(app, ["build", "--project-dir", str(project_dir), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    if document["tag"] != project_image:  # the source tree changed since the session built it (shared work tree)
        again = runner.invoke(app, ["build", "--project-dir", str(project_dir), "--json"])
        assert again.exit_code == 0, again.output
        document = {**json.loads(again.stdout), "tag": document["tag"]}
    assert document["built"] is False and document["pushed"] is None


@pytest.mark.docker
@pytest.mark.slow
def test_start_wait_status_logs_stop_through_the_cli(runner, project_dir, project_image, docker_engine):
    (project_dir / "sensor-manager.yaml").write_text(yaml.safe_dump({
        "project": "docker-cli", "seed": 5, "sensors_per_city": 1, "cities": [{"name": "Berlin"}],
        "simulation": {"readings_per_second": 2}, "uploader": {"interval_seconds": 2},
    }))
    common = ["--project-dir", str(project_dir)]
    try:
        result = runner.invoke(app, ["start", *common, "--runtime", "docker", "-p", "sm-cli-test", "--no-rebuild",
                                     "--wait", "--wait-timeout", "120"])
        assert result.exit_code == 0, result.output
        labels = [c.labels for c in docker_engine.containers.list(filters={"label": "io.sensor-manager.project"})]
        assert labels and {l["com.docker.compose.project"] for l in labels} == {"sm-cli-test"}  # later commands reuse -p
        status = runner.invoke(app, ["status", *common, "--json"])
        assert status.exit_code == 0, status.output
        services = json.loads(status.stdout)["services"]
        assert {s["name"]: (s["state"], s["health"]) for s in services} == {
            s["name"]: ("running", "healthy") for s in services
        } and len(services) == 2
        logs = runner.invoke(app, ["logs", *common, "--tail", "5"])
        assert logs.exit_code == 0 and "Simulating" in logs.stdout
    finally:
        stop = runner.invoke(app, ["stop", *common])
    assert stop.exit_code == 0, stop.output
    assert not docker_engine.containers.list(all=True, filters={"label": "io.sensor-manager.project"})
    assert os.path.isdir(project_dir / "data" / "Berlin")


def test_start_refuses_tag_together_with_no_tag(runner, project_dir, tree_listing):
    before = tree_listing(project_dir)
    result = runner.invoke(app, ["start", "--project-dir", str(project_dir), "--runtime", "docker", "--tag", "t1", "--no-tag"])
    assert result.exit_code == 2 and "--tag and --no-tag" in result.stderr and "Traceback" not in result.output
    assert tree_listing(project_dir) == before


@pytest.mark.docker
def test_start_with_a_bad_project_name_exits_2_and_starts_nothing(runner, project_dir, docker_engine, tree_listing):
    before = tree_listing(project_dir)
    result = runner.invoke(app, ["start", "--project-dir", str(project_dir), "--runtime", "docker", "-p", "Bad Name!"])
    assert result.exit_code == 2 and "Bad Name!" in result.stderr and "Traceback" not in result.output
    assert tree_listing(project_dir) == before


@pytest.mark.docker
def test_start_no_rebuild_with_a_missing_image_fails_clearly(runner, project_dir, docker_engine):
    result = runner.invoke(app, ["start", "--project-dir", str(project_dir), "--runtime", "docker", "--cities", "Berlin",
                                 "--sensors-per-city", "1", "--no-rebuild", "--tag", "never-built-0"])
    assert result.exit_code == 2 and "--no-rebuild" in result.stderr and "never-built-0" in result.stderr
    assert not docker_engine.containers.list(all=True, filters={"label": "io.sensor-manager.project"})


@pytest.mark.docker
@pytest.mark.slow
def test_build_save_writes_a_tarball_docker_load_takes(runner, project_dir, project_image, tmp_path):
    import tarfile

    target = tmp_path / "sensor-manager.tar"
    result = runner.invoke(app, ["build", "--project-dir", str(project_dir), "--save", str(target), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["saved"] == str(target) and not list(tmp_path.glob(".*.partial"))
    with tarfile.open(target) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert [document["tag"]] == manifest[0]["RepoTags"]  # `docker load -i` restores the content tag
