"""Conventions every command follows, checked on the foundation commands (plan, config validate)."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from sensor_manager import __version__
from sensor_manager.cli import app


def has_colour(text: str) -> bool:
    """Whether any SGR sequence sets a foreground or background colour (bold/italic are not colour)."""
    for params in re.findall(r"\x1b\[([0-9;]*)m", text):
        codes = [int(p) for p in params.split(";") if p]
        if any(30 <= c <= 49 or 90 <= c <= 107 for c in codes):
            return True
    return False


def test_version(runner):
    result = runner.invoke(app, ["--version"])
    assert (result.exit_code, result.stdout) == (0, f"sensor-manager {__version__}\n")


def test_python_dash_m_works(project_dir):
    result = subprocess.run([sys.executable, "-m", "sensor_manager", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == f"sensor-manager {__version__}\n"


@pytest.mark.parametrize("variable", ["NO_COLOR", "NO_COLORS"])
def test_no_colour_with_no_color_or_the_seed_alias(project_dir, variable):
    # A real process with a forced terminal: colour would appear unless the variable turns it off.
    env = {"PATH": "/usr/bin:/bin", "FORCE_COLOR": "1", "TERM": "xterm-256color", variable: "1"}
    args = [sys.executable, "-m", "sensor_manager", "plan", "--cities", "Rome", "--project-dir", str(project_dir)]
    result = subprocess.run(args, capture_output=True, text=True, env=env)
    assert result.returncode == 0 and "Rome_" in result.stdout and not has_colour(result.stdout)


def test_colour_is_used_on_a_terminal_without_no_color(project_dir):
    env = {"PATH": "/usr/bin:/bin", "FORCE_COLOR": "1", "TERM": "xterm-256color"}
    args = [sys.executable, "-m", "sensor_manager", "plan", "--cities", "Rome", "--project-dir", str(project_dir)]
    result = subprocess.run(args, capture_output=True, text=True, env=env)
    assert result.returncode == 0 and has_colour(result.stdout)


@pytest.mark.parametrize("command", [["plan"], ["config", "validate"]])
def test_json_is_exactly_one_document_with_schema_version(runner, project_dir, command):
    result = runner.invoke(app, [*command, "--json", "--project-dir", str(project_dir)])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["schema_version"] == 1


@pytest.mark.parametrize("command", [["plan"], ["config", "validate"]])
def test_shared_flags_are_accepted_after_the_command(runner, project_dir, tmp_path, command):
    config = tmp_path / "c.yaml"
    config.write_text("cities: [{name: Oslo, latitude: 59.91, longitude: 10.75, timezone: Europe/Oslo}]\n")
    result = runner.invoke(app, [*command, "--config", str(config), "--project-dir", str(project_dir), "--json",
                                 "--quiet", "--verbose"])
    assert result.exit_code == 0, result.stderr
    assert "Oslo" in result.stdout


def test_the_flag_after_the_command_wins(runner, project_dir, tmp_path):
    outer, inner = tmp_path / "outer.yaml", tmp_path / "inner.yaml"
    outer.write_text("seed: 1\n")
    inner.write_text("seed: 2\n")
    result = runner.invoke(app, ["--config", str(outer), "plan", "--json", "--config", str(inner),
                                 "--project-dir", str(project_dir)])
    assert json.loads(result.stdout)["seed"] == 2


def test_usage_errors_exit_2_without_traceback(runner, project_dir):
    for args in (["plan", "--sensors-per-city", "many"], ["plan", "--no-such-flag"], ["no-such-command"]):
        result = runner.invoke(app, [*args, "--project-dir", str(project_dir)])
        assert result.exit_code == 2, args
        assert "Traceback" not in result.output + result.stderr


def test_results_on_stdout_messages_on_stderr(runner, project_dir):
    result = runner.invoke(app, ["config", "validate", "--project-dir", str(project_dir)])
    assert result.exit_code == 0
    assert "is valid" in result.stderr and "is valid" not in result.stdout


def test_traceback_only_on_request(project_dir):
    base = [sys.executable, "-m", "sensor_manager"]
    args = ["plan", "--sensors-per-city", "0", "--project-dir", str(project_dir)]
    plain = subprocess.run([*base, *args], capture_output=True, text=True)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    traced = subprocess.run([*base, "--traceback", *args], capture_output=True, text=True)
    assert traced.returncode == 2 and "Traceback" in traced.stderr


@pytest.mark.parametrize("placement", ["before", "after"])
def test_verbose_logs_what_the_library_resolved_on_stderr(runner, project_dir, placement):
    command = ["status", "--project-dir", str(project_dir), "--runtime", "local"]
    args = ["--verbose", *command] if placement == "before" else [*command, "-v"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"project dir: {project_dir}" in result.stderr
    assert "runtime: local (--runtime: local)" in result.stderr
    assert "project dir:" not in result.stdout


def test_without_verbose_there_is_no_debug_log(runner, project_dir):
    runner.invoke(app, ["-v", "status", "--project-dir", str(project_dir)])
    result = runner.invoke(app, ["plan", "--cities", "Rome", "--project-dir", str(project_dir)])
    assert result.exit_code == 0 and "project dir:" not in result.stderr and "config:" not in result.stderr
    verbose = runner.invoke(app, ["plan", "--cities", "Rome", "--project-dir", str(project_dir), "-v"])
    assert "config: " in verbose.stderr and "'select_cities': 'Rome'" in verbose.stderr
