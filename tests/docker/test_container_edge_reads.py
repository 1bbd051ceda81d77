"""`query --source edge` with container edge reads (forced, as on Docker Desktop) on a real docker fleet:
it runs inside the uploader container and returns exactly what a host-side query returns."""
from __future__ import annotations

import json

import pytest
import yaml

from sensor_manager.cli import app
from sensor_manager.config import load_config
from sensor_manager.layout import ProjectLayout
from sensor_manager.observe.access import ENV_VAR
from sensor_manager.plan import resolve_plan
from sensor_manager.runtimes.compose import ComposeRuntime

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CONFIG = {
    "project": "docker-edge-reads",
    "seed": 5,
    "sensors_per_city": 2,
    "cities": [{"name": "Amsterdam"}],
    "simulation": {"readings_per_second": 4},
    "uploader": {"interval_seconds": 2},
}


def test_query_inside_the_uploader_container_matches_the_host(tmp_path, runner, monkeypatch, docker_engine, project_image,
                                                              docker_settings_for_tests, wait_until, db_seqs):
    root = tmp_path / "project"
    root.mkdir()
    (root / "sensor-manager.yaml").write_text(yaml.safe_dump(CONFIG))
    layout, config = ProjectLayout.at(root), load_config(None, root)
    runtime = ComposeRuntime(layout, settings=docker_settings_for_tests)
    plan = resolve_plan(config, layout, persist=True)
    runtime.start(plan, config)
    try:
        assert runtime.wait_healthy(["uploader-amsterdam"], 120) == []
        for sensor in plan.sensors:
            wait_until(lambda db=layout.root / sensor.db_path: len(db_seqs(db)) >= 5, 60, f"rows in {sensor.db_path}")
        # Stop the sensors (the uploader keeps running) so both reads see the same rows.
        runtime.stop([f"sensor-amsterdam-{s.code.lower()}" for s in plan.sensors])

        def query(mode: str, *args: str):
            monkeypatch.setenv(ENV_VAR, mode)
            result = runner.invoke(app, ["query", "--project-dir", str(layout.root), "--json", *args])
            assert result.exit_code == 0, result.output
            return json.loads(result.stdout)

        sensor = plan.sensors[1].sensor_id
        for args in (("--limit", "30"), ("--count",), ("--latest",), ("--list",), ("--sensor", sensor, "--limit", "5")):
            inside = query("container", *args)
            assert inside == query("host", *args), args
            assert inside["rows"]
        assert query("container", "--count")["rows"][0]["count"] == sum(len(db_seqs(layout.root / s.db_path)) for s in plan.sensors)

        # The per-DB checks diagnostics skips in this mode run inside the container, as its hint says.
        diagnostics = json.loads(runner.invoke(app, ["diagnostics", "--json", "--project-dir", str(layout.root)]).stdout)
        hint = next(c["hint"] for c in diagnostics["checks"] if c["name"] == f"db {sensor}")
        assert "exec uploader-amsterdam python -m sensor_manager --project-dir /project diagnostics" in hint
        container = docker_engine.containers.list(filters={"label": [f"io.sensor-manager.project={runtime.project_name}", "io.sensor-manager.role=uploader"]})[0]
        _, (out, _err) = container.exec_run(["python", "-m", "sensor_manager", "--project-dir", "/project", "diagnostics", "--json"], demux=True)
        inside = {c["name"]: c["status"] for c in json.loads(out)["checks"]}
        assert {inside[f"db {s.sensor_id}"] for s in plan.sensors} == {"pass"}
    finally:
        runtime.stop()
