"""Lag on a running local fleet: it rises while `stop uploader-<city>` holds the uploader and falls when it returns."""
from __future__ import annotations

import json

import pytest

from sensor_manager.cli import app

CONFIG = """project: obs-life
sensors_per_city: 1
runtime: local
simulation:
  readings_per_second: 20
cities:
  - name: Amsterdam
uploader:
  interval_seconds: 1
"""


def amsterdam(runner, project):
    result = runner.invoke(app, ["monitor", "--project-dir", project, "--once", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["cities"][0]


@pytest.mark.slow
def test_lag_rises_while_the_uploader_is_stopped_and_falls_when_it_returns(runner, project_dir, wait_until):
    (project_dir / "sensor-manager.yaml").write_text(CONFIG)
    project = str(project_dir)
    started = runner.invoke(app, ["start", "--project-dir", project, "--wait", "--no-diagnostics"])
    assert started.exit_code == 0, started.output
    try:
        wait_until(lambda: amsterdam(runner, project)["last_upload_age_seconds"] is not None, 60, "a first upload")
        assert runner.invoke(app, ["stop", "--project-dir", project, "uploader-amsterdam"]).exit_code == 0
        stopped = amsterdam(runner, project)
        assert stopped["uploader_state"] == "stopped" and stopped["sensors_running"] == 1
        risen = wait_until(lambda: (c := amsterdam(runner, project))["lag_rows"] >= stopped["lag_rows"] + 20 and c, 60, "lag to rise")
        assert risen["lag_seconds"] is not None and risen["rows"] > stopped["rows"]
        assert runner.invoke(app, ["start", "--project-dir", project, "uploader-amsterdam", "--wait", "--no-diagnostics"]).exit_code == 0
        fallen = wait_until(lambda: (c := amsterdam(runner, project))["lag_rows"] < risen["lag_rows"] and c, 60, "lag to fall")
        assert fallen["uploader_state"] in ("running", "idle")
    finally:
        runner.invoke(app, ["stop", "--project-dir", project])
