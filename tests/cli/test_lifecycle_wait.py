"""`start --wait` with a service that cannot work: it is reported as crash-looping, by name, and the command fails."""
from __future__ import annotations

import pytest

from sensor_manager.cli import app
from sensor_manager.config import load_config
from sensor_manager.plan import build_plan

pytestmark = pytest.mark.slow

CONFIG = """\
project: wait-fails
seed: 3
sensors_per_city: 1
runtime: local
simulation:
  readings_per_second: 5
cities:
  - name: Amsterdam
uploader:
  interval_seconds: 1
"""


def test_start_wait_names_the_crash_looping_service_and_exits_1(runner, project_dir):
    (project_dir / "sensor-manager.yaml").write_text(CONFIG)
    sensor = build_plan(load_config(project_dir / "sensor-manager.yaml", project_dir)).sensors[0]
    blocker = project_dir / sensor.sensor_dir  # a file where the sensor's folder must go: the simulator cannot start
    blocker.parent.mkdir(parents=True)
    blocker.write_text("in the way\n")
    try:
        result = runner.invoke(app, ["--project-dir", str(project_dir), "start", "--wait", "--wait-timeout", "120"])
        assert result.exit_code == 1
        assert "error: not healthy (waited up to 120 s): sensor-amsterdam (crashloop, unknown); see `logs SERVICE`" in result.stderr
        assert "Traceback" not in result.stderr
        status = runner.invoke(app, ["--project-dir", str(project_dir), "status"])
        assert "crashloop" in status.stdout
        logs = runner.invoke(app, ["--project-dir", str(project_dir), "logs", "sensor-amsterdam"])
        assert "Service is crash-looping." in logs.stdout
    finally:
        assert runner.invoke(app, ["--project-dir", str(project_dir), "stop"]).exit_code == 0
    assert blocker.read_text() == "in the way\n"
