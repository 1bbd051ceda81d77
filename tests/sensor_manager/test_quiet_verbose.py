"""Every command accepts -q/--quiet and -v/--verbose after its name (the README promises it)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from sensor_manager.cli import app


def _commands(group, prefix=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name)


COMMANDS = sorted(_commands(typer.main.get_command(app)))


def test_the_app_has_commands():
    assert ("upload",) in COMMANDS and ("config", "validate") in COMMANDS and len(COMMANDS) > 15


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("flags", [["--quiet", "--verbose"], ["-q", "-v"]])
def test_every_command_accepts_quiet_and_verbose(runner, command, flags):
    result = runner.invoke(app, [*command, *flags, "--help"])
    assert result.exit_code == 0, result.output
    assert "--quiet" in result.stdout and "--verbose" in result.stdout
    assert "--install-completion" not in result.stdout


def test_quiet_after_the_command_reaches_the_session(runner, project_dir):
    # status declares no --quiet of its own: the flag folds into the options session() reads.
    from sensor_manager.cli import options

    seen = []
    original = options.session

    def spy(*args, **kwargs):
        seen.append(original(*args, **kwargs))
        return seen[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sensor_manager.cli.lifecycle.session", spy)
        result = runner.invoke(app, ["status", "-q", "--project-dir", str(project_dir)])
    assert result.exit_code == 0, result.output
    assert seen and seen[0].quiet and not seen[0].verbose


def test_upload_quiet_silences_its_warnings(tmp_path):
    sensor_dir = tmp_path / "project" / "data" / "Berlin" / "AB12"
    sensor_dir.mkdir(parents=True)
    os.symlink(tmp_path / "elsewhere.db", sensor_dir / "sensor_data.db")  # skipped with a warning

    def upload(*flags: str) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "sensor_manager", "upload", "--once", "--sqlite", str(tmp_path / "project" / "data"),
                "--project-dir", str(tmp_path / "project"), *flags]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2])

    loud, quiet = upload(), upload("--quiet")
    assert "Sensor DB unreadable" in loud.stderr
    assert quiet.returncode == loud.returncode and "Sensor DB unreadable" not in quiet.stderr
