"""`plan` printed to a pipe or file shows every cell whole (no terminal width to fit)."""
from __future__ import annotations

import json

from sensor_manager.cli import app


def test_a_piped_plan_table_is_not_truncated(runner, project_dir):
    args = ["plan", "--cities", "St. John's,Mexico City,San Francisco", "--sensors-per-city", "2", "--project-dir", str(project_dir)]
    table = runner.invoke(app, args)  # CliRunner's stdout is not a terminal, like a pipe
    assert table.exit_code == 0, table.stderr
    sensors = json.loads(runner.invoke(app, [*args, "--json"]).stdout)["sensors"]
    for sensor in sensors:
        row = next(line for line in table.stdout.splitlines() if sensor["sensor_id"] in line)
        assert sensor["city"] in row and sensor["db_path"] in row and sensor["timezone"] in row
        assert f"{sensor['manufacturer']} {sensor['model']} {sensor['firmware_version']}" in row
    assert "…" not in table.stdout
