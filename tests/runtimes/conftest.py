"""Fixtures of the runtime tests.

A project whose supervisor runs small stand-in programs instead of the simulator and uploader:

The supervisor runs whatever `state/supervisor-spec.json` lists, so these tests exercise restarts,
crash loops, stops and logs with real processes in a second or two each.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from fleetcore.statusfiles import read_json_object
from sensor_manager.layout import ProjectLayout
from sensor_manager.runtimes import supervisor as sv
from sensor_manager.runtimes.local import LocalRuntime

FAST_POLICY = {"backoff_initial_seconds": 0.05, "backoff_max_seconds": 0.2, "quick_exit_seconds": 5, "stop_grace_seconds": 3}

TICKER = "import time\nwhile True:\n    print('tick', flush=True)\n    time.sleep(0.1)\n"
CRASHER = "import sys\nprint('about to fail', flush=True)\nsys.exit(3)\n"
FINISHER = "print('all done', flush=True)\n"
STUBBORN = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.1)\n"


def write_spec(root: Path, programs: dict[str, str], policy: dict | None = None) -> LocalRuntime:
    layout = ProjectLayout.at(root)
    layout.ensure_state()
    spec = {
        "schema_version": 1,
        "generation": 0,
        "services": [{"name": name, "role": "sensor", "city": "X", "argv": [sys.executable, "-c", code], "env": {}} for name, code in programs.items()],
        "desired": {},
        "restart_tokens": {},
        "policy": policy or FAST_POLICY,
    }
    sv.write_json_atomic(sv.spec_path(layout), spec)
    return LocalRuntime(layout)


def services_state(runtime: LocalRuntime) -> dict:
    return (read_json_object(sv.state_path(runtime.layout)) or {}).get("services", {})


@pytest.fixture
def programs() -> SimpleNamespace:
    return SimpleNamespace(TICKER=TICKER, CRASHER=CRASHER, FINISHER=FINISHER, STUBBORN=STUBBORN)


@pytest.fixture(name="services_state")
def services_state_fixture():
    return services_state


@pytest.fixture
def supervised(project_dir):
    """`supervised({name: python_code}, policy=None)` -> a LocalRuntime over those programs; stopped afterwards."""
    runtimes = []

    def make(programs, policy=None):
        runtime = write_spec(project_dir, programs, policy)
        runtimes.append(runtime)
        return runtime

    yield make
    for runtime in runtimes:
        runtime.stop(None)
        assert not runtime.is_running()


def docker_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=120)


@pytest.fixture(scope="module")
def swarm_manager():
    """(docker client, hostname) of a one-node swarm; the shared engine is left as it was found.

    The swarm is initialised only when the engine is in none, and then left at the end, with the
    `docker_gwbridge` network swarm mode creates; an existing swarm is kept and only the city labels
    tests added are removed. Swarm mode does not change how the Compose tests' containers run."""
    from fleetcore.errors import EngineUnavailableError
    from sensor_manager.runtimes.engine import docker_client

    try:
        client = docker_client(timeout=10)
    except EngineUnavailableError as exc:
        pytest.skip(f"no Docker engine: {exc}")
    joined_here = (client.info().get("Swarm") or {}).get("LocalNodeState") != "active"
    had_gwbridge = bool(client.networks.list(names=["docker_gwbridge"]))
    if joined_here:
        docker_cli("swarm", "init", "--advertise-addr", "127.0.0.1")
    node = client.nodes.list()[0]
    try:
        yield client, node.attrs["Description"]["Hostname"]
    finally:
        if joined_here:
            docker_cli("swarm", "leave", "--force")
            if not had_gwbridge:
                docker_cli("network", "rm", "docker_gwbridge", check=False)
        else:
            node.reload()
            spec = node.attrs["Spec"]
            spec["Labels"] = {k: v for k, v in spec.get("Labels", {}).items() if not k.startswith("io.sensor-manager.city.")}
            node.update(spec)
