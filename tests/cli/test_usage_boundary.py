"""Every registered command, as a process: shared options on either side of its name, plain usage errors."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from sensor_manager.cli import app
from sensor_manager.cli.reference import _commands

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = {name: command for name, command in _commands(typer.main.get_command(app))}
BOX = set("╭╮╰╯│─")


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-m", "sensor_manager", *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=60)


def assert_usage_error(result: subprocess.CompletedProcess, command: str, names: str) -> None:
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 2 and lines[0].startswith("error: ") and names in lines[0], result.stderr
    assert lines[1] == f"try './sensor_manager.py {command} --help'".replace("  ", " ")
    assert not BOX & set(result.stderr + result.stdout) and "Traceback" not in result.stderr


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_shared_options_are_accepted_before_and_after_the_command_name(name, tmp_path):
    shared = ["--config", str(tmp_path / "c.yaml"), "--project-dir", str(tmp_path), "--quiet", "--verbose"]
    before = run(*shared, *name.split(), "--help")
    after = run(*name.split(), "--help", *shared)
    short = run(*name.split(), "--help", "-c", "c.yaml", "-q", "-v")
    for result in (before, after, short):
        assert result.returncode == 0, result.stderr
        assert "<bool>" not in result.stdout  # flags take no value


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_an_unknown_option_is_one_error_line_and_a_hint(name):
    assert_usage_error(run(*name.split(), "--no-such-flag"), name, "--no-such-flag")


def test_usage_errors_before_the_command_name_and_unknown_commands_hint_at_the_app_help():
    assert_usage_error(run("--no-such-flag", "plan"), "", "--no-such-flag")
    assert_usage_error(run("no-such-command"), "", "no-such-command")
    assert_usage_error(run("plan", "--max-cities"), "plan", "--max-cities")
    assert_usage_error(run("plan", "--max-cities", "many"), "plan", "--max-cities")


def test_the_config_given_after_the_command_name_wins(tmp_path):
    result = run("--config", str(tmp_path / "before.yaml"), "plan", "--config", str(tmp_path / "after.yaml"))
    assert result.returncode == 2 and "after.yaml" in result.stderr and "before.yaml" not in result.stderr
