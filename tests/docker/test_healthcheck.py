"""The containers' healthcheck: the same verdicts as `simulate --check` and `uploader --check`."""
from __future__ import annotations

import subprocess
import sys

from fleetcore.statusfiles import write_status
from sensor_manager.runtimes.healthcheck import main


def test_a_fresh_running_sensor_is_healthy_and_a_missing_file_is_not(tmp_path, capsys):
    status = tmp_path / "status.json"
    assert main(["sensor", str(status)]) == 1 and "no readable status file" in capsys.readouterr().out
    write_status(status, {"role": "sensor", "name": "x", "state": "running", "sensors": {}}, interval_seconds=5)
    assert main(["sensor", str(status)]) == 0


def test_an_uploader_with_a_permanently_failing_sink_is_unhealthy(tmp_path, capsys):
    status = tmp_path / "uploader-x.json"
    write_status(status, {"role": "uploader", "state": "running", "sinks": {"delta": {"failing_permanently": False}}}, 5)
    assert main(["uploader", str(status)]) == 0
    write_status(status, {"role": "uploader", "state": "failing", "sinks": {"delta": {"failing_permanently": True}}}, 5)
    assert main(["uploader", str(status)]) == 1 and "failing permanently" in capsys.readouterr().out


def test_the_module_runs_without_the_cli(tmp_path):
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "sensor_manager.runtimes.healthcheck", "sensor",
                             str(tmp_path / "none.json")], capture_output=True, text=True)
    assert result.returncode == 1
    imported = result.stderr
    assert "typer" not in imported and "numpy" not in imported and "rich" not in imported
