"""The launcher on a copy of the repo, run by the base interpreter with `ensurepip` hidden.

The project's dependencies reach the new venv through PYTHONPATH (the test venv's site-packages) and
SENSOR_MANAGER_PIP_ARGS installs only the project itself, offline; everything else is the real thing:
a real venv, a real pip bootstrap, a real editable install and a real re-exec.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)
SITE_PACKAGES = sysconfig.get_paths()["purelib"]
OFFLINE_PIP_ARGS = "--no-deps --no-index --no-build-isolation --quiet"


def _can_build_offline() -> bool:
    """An offline editable build needs setuptools >= 70.1, or an older one plus `wheel`, in this venv."""
    import importlib.util

    import setuptools

    major, minor = (int(part) for part in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


needs_offline_build = pytest.mark.skipif(not _can_build_offline(), reason="needs setuptools>=70.1 or wheel in the test venv")


def _copy_repo(target: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".venv", "data", "state", "lake", "archive", ".git")
    target.mkdir()
    for name in ("pyproject.toml", "sensor_manager.py"):
        shutil.copy2(REPO / name, target / name)
    for name in ("fleetcore", "sensor_manager", "uploader", "config"):
        shutil.copytree(REPO / name, target / name, ignore=ignore)
    readme = REPO / "README.md"
    (target / "README.md").write_text(readme.read_text() if readme.exists() else "# sensor-manager\n")
    return target


def _shim(directory: Path, *hidden: str) -> Path:
    """A PYTHONPATH entry under which importing each of `hidden` fails, as on stock Debian python3."""
    for module in hidden:
        package = directory / module
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(f"raise ImportError('{module} hidden by the test')\n")
    return directory


def _env(pythonpath: list[Path | str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "SENSOR_MANAGER_", "VIRTUAL_ENV", "PIP_"))}
    env.update(PYTHONPATH=os.pathsep.join(map(str, pythonpath)), NO_COLOR="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.update(extra)
    return env


def _launch(repo: Path, env: dict[str, str], *args: str, python: str = BASE_PYTHON, cwd: Path | None = None):
    return subprocess.run([python, str(repo / "sensor_manager.py"), *args], capture_output=True, text=True,
                          env=env, cwd=cwd or repo.parent, timeout=240)


def _stamp(repo: Path) -> str:
    return hashlib.sha256((repo / "pyproject.toml").read_bytes()).hexdigest()


@pytest.mark.slow
@needs_offline_build
def test_first_run_without_ensurepip_builds_the_venv_then_later_runs_go_straight_to_the_cli(tmp_path):
    repo = _copy_repo(tmp_path / "repo")
    env = _env([_shim(tmp_path / "shim", "ensurepip"), SITE_PACKAGES], SENSOR_MANAGER_PIP_ARGS=OFFLINE_PIP_ARGS)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    first = _launch(repo, env, "--version", cwd=elsewhere)
    assert first.returncode == 0, first.stderr
    assert first.stdout == "sensor-manager 0.1.0\n"  # pip's output never reaches stdout
    assert "bootstrapping pip" in first.stderr and "installing sensor-manager" in first.stderr
    marker = repo / ".venv" / ".sensor-manager-installed"
    assert marker.read_text().strip() == _stamp(repo)
    isolated_pip = subprocess.run([str(repo / ".venv/bin/python"), "-I", "-m", "pip", "--version"], capture_output=True)
    assert isolated_pip.returncode == 0  # pip really is inside the venv, not borrowed from PYTHONPATH

    second = _launch(repo, env, "--version", cwd=elsewhere)
    assert (second.returncode, second.stdout, second.stderr) == (0, "sensor-manager 0.1.0\n", "")

    # Already inside .venv: a plain hand-off to the CLI.
    inside = _launch(repo, env, "--version", python=str(repo / ".venv/bin/python"))
    assert (inside.returncode, inside.stdout, inside.stderr) == (0, "sensor-manager 0.1.0\n", "")

    with (repo / "pyproject.toml").open("a") as handle:
        handle.write("\n# changed\n")
    changed = _launch(repo, env, "--version")
    assert changed.returncode == 0 and "pyproject.toml changed; reinstalling" in changed.stderr
    assert marker.read_text().strip() == _stamp(repo)


@pytest.mark.slow
@needs_offline_build
def test_a_half_built_venv_is_rebuilt(tmp_path):
    repo = _copy_repo(tmp_path / "repo")
    (repo / ".venv" / "bin").mkdir(parents=True)
    (repo / ".venv" / "leftover-from-an-interrupted-install").write_text("x")
    env = _env([_shim(tmp_path / "shim", "ensurepip"), SITE_PACKAGES], SENSOR_MANAGER_PIP_ARGS=OFFLINE_PIP_ARGS)
    result = _launch(repo, env, "--version")
    assert result.returncode == 0, result.stderr
    assert "incomplete .venv" in result.stderr and result.stdout == "sensor-manager 0.1.0\n"
    assert not (repo / ".venv" / "leftover-from-an-interrupted-install").exists()
    assert (repo / ".venv" / ".sensor-manager-installed").exists()


def test_without_ensurepip_and_without_any_pip_it_prints_the_fix_and_exits_1(tmp_path):
    repo = _copy_repo(tmp_path / "repo")
    no_wheels = tmp_path / "no-wheels"
    no_wheels.mkdir()
    env = _env([_shim(tmp_path / "shim", "ensurepip", "pip")], SENSOR_MANAGER_PIP_WHEEL_DIRS=str(no_wheels))
    result = _launch(repo, env, "plan")
    assert result.returncode == 1
    assert "Fix: sudo apt-get install python3-venv" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (repo / ".venv" / ".sensor-manager-installed").exists()  # the next run rebuilds


def test_pip_is_bootstrapped_offline_from_a_pip_wheel(tmp_path):
    import ensurepip  # the test's own interpreter has it: use its bundled pip wheel as the wheel dir

    wheels = Path(ensurepip.__file__).parent / "_bundled"
    if not list(wheels.glob("pip-*.whl")):
        pytest.skip("this interpreter bundles no pip wheel")
    repo = _copy_repo(tmp_path / "repo")
    # Host pip hidden too, so only the wheel can provide pip; the install itself then fails (no deps).
    env = _env([_shim(tmp_path / "shim", "ensurepip", "pip")], SENSOR_MANAGER_PIP_WHEEL_DIRS=str(wheels),
               SENSOR_MANAGER_PIP_ARGS="--no-index --no-deps --no-build-isolation --quiet")
    result = _launch(repo, env, "--version")
    assert "bootstrapping pip" in result.stderr
    pip = subprocess.run([str(repo / ".venv/bin/python"), "-I", "-m", "pip", "--version"], capture_output=True, text=True)
    assert pip.returncode == 0 and str(repo / ".venv") in pip.stdout
    # The shim makes pip itself fail on import; the launcher reports that as a failed install.
    assert result.returncode == 1 and "installing the project failed" in result.stderr


def test_too_old_python_is_refused_with_a_message(tmp_path):
    script = REPO / "sensor_manager.py"
    code = f"import sys, runpy; sys.version_info = (3, 10, 0); sys.argv = ['{script}']; runpy.run_path('{script}', run_name='__main__')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1 and "needs Python 3.11 or newer" in result.stderr


def test_works_through_a_symlink_from_another_directory(tmp_path):
    # The already-built project venv: a symlinked launcher still finds its repo (and its .venv).
    link = tmp_path / "bin" / "sensor-manager"
    link.parent.mkdir()
    link.symlink_to(REPO / "sensor_manager.py")
    result = subprocess.run([str(REPO / ".venv/bin/python"), str(link), "--version"], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("sensor-manager ")
