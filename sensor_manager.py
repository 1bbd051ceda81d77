#!/usr/bin/env python3
"""Launcher: `./sensor_manager.py <command>` from any directory, on a machine with only python3 >= 3.11.

First run: creates `.venv/` beside this file, installs the project into it (`pip install -e .[test]`,
progress on stderr) and writes a marker holding a hash of pyproject.toml; then re-executes itself with
the venv's python. Later runs go straight to the CLI. A changed pyproject.toml reinstalls; a `.venv`
without the marker (an interrupted install) is rebuilt.

Python without `ensurepip` (stock Debian/Ubuntu): the venv is made `--without-pip` and pip is bootstrapped
from a pip wheel (/usr/share/python-wheels), the host's own pip, or the host pip's `--python` option;
failing all of those it prints the one fixing command and exits 1.

Environment: SENSOR_MANAGER_PIP_ARGS adds pip install arguments (e.g. "--no-index --find-links wheels/");
SENSOR_MANAGER_PIP_WHEEL_DIRS (os.pathsep-separated) replaces the directories searched for a pip wheel.
Only the standard library is used here, and nothing heavy is imported before the hand-off.
"""
from __future__ import annotations

import os
import sys
from typing import NoReturn

MIN_PYTHON = (3, 11)
FIX_COMMAND = "sudo apt-get install python3-venv"
DEFAULT_WHEEL_DIRS = ("/usr/share/python-wheels",)


def _say(message: str) -> None:
    sys.stderr.write(f"sensor_manager.py: {message}\n")
    sys.stderr.flush()


def _fail(message: str) -> NoReturn:
    _say(f"error: {message}")
    raise SystemExit(1)


class Launcher:
    def __init__(self, repo: str) -> None:
        self.repo = repo
        self.venv = os.path.join(repo, ".venv")
        self.marker = os.path.join(self.venv, ".sensor-manager-installed")
        bindir = "Scripts" if os.name == "nt" else "bin"
        self.python = os.path.join(self.venv, bindir, "python.exe" if os.name == "nt" else "python")

    # --- state -----------------------------------------------------------------------------------

    def wanted_stamp(self) -> str:
        import hashlib

        with open(os.path.join(self.repo, "pyproject.toml"), "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()

    def stamp(self) -> str | None:
        try:
            with open(self.marker, encoding="utf-8") as handle:
                return handle.read().strip()
        except OSError:
            return None

    def is_running_inside(self) -> bool:
        return os.path.realpath(sys.prefix) == os.path.realpath(self.venv)

    def _run(self, args: list[str], **kwargs) -> int:
        import subprocess

        # pip's output goes to stderr: stdout belongs to the command's results.
        return subprocess.run(args, stdout=kwargs.pop("stdout", sys.stderr), **kwargs).returncode

    def _quiet_ok(self, args: list[str]) -> bool:
        import subprocess

        try:
            return subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=os.sep).returncode == 0
        except OSError:
            return False

    def venv_works(self) -> bool:
        return os.path.exists(self.python) and self._quiet_ok([self.python, "-c", "pass"])

    def project_installed(self) -> bool:
        """The venv already holds a complete install (made by hand or by an older launcher)."""
        check = "import importlib.metadata as m; m.distribution('sensor-manager'); import sensor_manager.cli"
        return self.venv_works() and self._quiet_ok([self.python, "-c", check])

    # --- building --------------------------------------------------------------------------------

    def ensure_installed(self) -> None:
        wanted = self.wanted_stamp()
        if self.stamp() == wanted and os.path.exists(self.python):
            return  # the fast path of every later run: two small file reads, no subprocess
        with self._install_lock():
            current = self.stamp()
            if current == wanted and self.venv_works():
                return
            if current is None and self.project_installed():
                self._write_marker(wanted)  # adopt a complete venv made without this launcher
                return
            if current is None or not self.venv_works():
                self.create_venv()
            else:
                _say("pyproject.toml changed; reinstalling the project into .venv")
            self.install()
            self._write_marker(wanted)

    def _install_lock(self):
        import contextlib
        import hashlib
        import tempfile

        @contextlib.contextmanager
        def lock():
            name = hashlib.sha256(self.repo.encode()).hexdigest()[:16]
            path = os.path.join(tempfile.gettempdir(), f"sensor-manager-install-{name}.lock")
            with open(path, "w") as handle:
                try:
                    import fcntl

                    fcntl.flock(handle, fcntl.LOCK_EX)
                except ImportError:  # Windows: no concurrent-install protection
                    pass
                yield

        return lock()

    def _write_marker(self, stamp: str) -> None:
        with open(self.marker, "w", encoding="utf-8") as handle:
            handle.write(stamp + "\n")

    def create_venv(self) -> None:
        import shutil

        if os.path.exists(self.venv):
            _say("found an incomplete .venv (no install marker); rebuilding it")
            shutil.rmtree(self.venv)
        _say(f"creating {self.venv} (first run; installing takes a minute or two)")
        has_ensurepip = _importable("ensurepip")
        args = [sys.executable, "-m", "venv", self.venv]
        if not has_ensurepip or self._run(args) != 0:
            if os.path.exists(self.venv):
                shutil.rmtree(self.venv)
            if self._run([*args, "--without-pip"]) != 0:
                _fail(f"could not create {self.venv}. Fix: {FIX_COMMAND}")
        if not self.has_pip():
            self.bootstrap_pip()

    def has_pip(self) -> bool:
        return self._quiet_ok([self.python, "-I", "-m", "pip", "--version"])

    def bootstrap_pip(self) -> None:
        _say("this python has no ensurepip; bootstrapping pip into .venv")
        for attempt in (self._pip_from_wheel, self._pip_copied_from_host, self._pip_via_host_python_option):
            if attempt() and self.has_pip():
                return
        _fail(f"python3 cannot create a virtual environment with pip here. Fix: {FIX_COMMAND}")

    def _pip_from_wheel(self) -> bool:
        import glob

        configured = os.environ.get("SENSOR_MANAGER_PIP_WHEEL_DIRS")
        dirs = configured.split(os.pathsep) if configured is not None else DEFAULT_WHEEL_DIRS
        for directory in filter(None, dirs):
            wheels = sorted(glob.glob(os.path.join(directory, "pip-*.whl")))
            if wheels:
                # A wheel is importable: run pip from it to install itself, offline.
                args = [self.python, os.path.join(wheels[-1], "pip"), "install", "--quiet", "--no-index",
                        "--find-links", directory, "pip"]
                if self._run(args) == 0:
                    return True
        return False

    def _pip_copied_from_host(self) -> bool:
        """Copy the host's pip package (pure Python, vendors its dependencies) into the venv."""
        import glob
        import shutil
        import sysconfig

        try:
            import pip  # noqa: F401 - the host interpreter's own pip
        except Exception:  # noqa: BLE001 - a broken or hidden pip just means: not this way
            return False
        source = os.path.dirname(pip.__file__)
        target_root = self._venv_purelib(sysconfig)
        if target_root is None:
            return False
        target = os.path.join(target_root, "pip")
        shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        for info in glob.glob(os.path.join(os.path.dirname(source), "pip-*.dist-info")):
            shutil.copytree(info, os.path.join(target_root, os.path.basename(info)), dirs_exist_ok=True)
        if self.has_pip():
            return True
        shutil.rmtree(target, ignore_errors=True)
        return False

    def _venv_purelib(self, sysconfig) -> str | None:
        path = sysconfig.get_path("purelib", vars={"base": self.venv, "platbase": self.venv})
        return path if os.path.isdir(path) else None

    def _pip_via_host_python_option(self) -> bool:
        if not _importable("pip"):
            return False
        return self._run([sys.executable, "-m", "pip", "--python", self.python, "install", "--quiet", "pip"]) == 0

    def install(self) -> None:
        import shlex

        _say("installing sensor-manager and its dependencies into .venv")
        extra = shlex.split(os.environ.get("SENSOR_MANAGER_PIP_ARGS", ""))
        args = [self.python, "-m", "pip", "install", "--disable-pip-version-check", *extra, "-e", f"{self.repo}[test]"]
        if self._run(args) != 0:
            _fail("installing the project failed (see pip's output above); rerun ./sensor_manager.py to retry")
        _say("installed; starting")

    # --- hand-off --------------------------------------------------------------------------------

    def reexec(self) -> NoReturn:
        args = [self.python, os.path.realpath(__file__), *sys.argv[1:]]
        if os.name == "nt":
            import subprocess

            raise SystemExit(subprocess.call(args))
        os.execv(self.python, args)


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except Exception:  # noqa: BLE001 - any failure means we cannot use it
        return False
    return True


def main() -> None:
    if sys.version_info < MIN_PYTHON:
        _fail(f"needs Python {'.'.join(map(str, MIN_PYTHON))} or newer (this is {sys.version.split()[0]})")
    launcher = Launcher(os.path.dirname(os.path.realpath(__file__)))
    if not launcher.is_running_inside():
        launcher.ensure_installed()
        launcher.reexec()
    if launcher.stamp() != launcher.wanted_stamp():
        launcher.ensure_installed()
    if sys.path[0] != launcher.repo:
        sys.path.insert(0, launcher.repo)
    from sensor_manager.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
