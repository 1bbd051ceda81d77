"""Finding the container engine and Compose v2: is Docker usable here, and how do we call compose?

`engine_available()` answers the `auto` runtime selection without raising; everything else raises
`EngineUnavailableError` (exit 3) with what to do next.
"""
from __future__ import annotations

import functools
import re
import shutil
import subprocess
from dataclasses import dataclass

from fleetcore.errors import EngineUnavailableError

PING_TIMEOUT_SECONDS = 5
INSTALL_HINT = "install Docker with the Compose v2 plugin (https://docs.docker.com/compose/install/) or use --runtime local"


@dataclass(frozen=True)
class EngineInfo:
    server_version: str
    operating_system: str
    memory_limit: bool  # can the engine enforce mem_limit (cgroup memory controller)?

    @property
    def is_docker_desktop(self) -> bool:
        """Docker Desktop runs containers in a VM: host-side reads of live SQLite files are unreliable there."""
        return "docker desktop" in self.operating_system.lower()


def docker_client(timeout: int = 60):
    """A docker SDK client for $DOCKER_HOST (or the default socket) that has answered a ping."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:  # pragma: no cover - docker is a declared dependency
        raise EngineUnavailableError(f"the docker Python package is missing; {INSTALL_HINT}") from None
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except DockerException as exc:
        raise EngineUnavailableError(f"no Docker engine answers ({_first_line(exc)}); start it or set DOCKER_HOST; {INSTALL_HINT}") from None
    except Exception as exc:  # requests' connection errors surface as plain exceptions here
        raise EngineUnavailableError(f"no Docker engine answers ({_first_line(exc)}); start it or set DOCKER_HOST") from None
    return client


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def _version_of(command: list[str]) -> str | None:
    try:
        result = subprocess.run([*command, "version", "--short"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip().lstrip("v") if result.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def compose_command() -> tuple[str, ...]:
    """`docker compose` (the v2 plugin) or a standalone `docker-compose` v2; v1 is refused."""
    seen_v1 = None
    candidates: list[tuple[str, ...]] = []
    if shutil.which("docker"):
        candidates.append(("docker", "compose"))
    if shutil.which("docker-compose"):
        candidates.append(("docker-compose",))
    for command in candidates:
        version = _version_of(list(command))
        if not version:
            continue
        major = re.match(r"(\d+)", version)
        if major and int(major.group(1)) >= 2:
            return command
        seen_v1 = (" ".join(command), version)
    if seen_v1:
        raise EngineUnavailableError(
            f"{seen_v1[0]} is Compose {seen_v1[1]}; Compose v1 is not supported: install Compose v2 "
            "(the `docker compose` plugin or a docker-compose 2.x binary)"
        )
    if not shutil.which("docker"):
        raise EngineUnavailableError(f"the docker command is not installed; {INSTALL_HINT}")
    raise EngineUnavailableError(f"Docker Compose v2 is not installed (`docker compose version` failed); {INSTALL_HINT}")


def engine_info(client=None) -> EngineInfo:
    client = client or docker_client()
    info = client.info()
    return EngineInfo(
        server_version=str(info.get("ServerVersion", "")),
        operating_system=str(info.get("OperatingSystem", "")),
        memory_limit=bool(info.get("MemoryLimit", False)),
    )


def engine_available() -> tuple[bool, str]:
    """(True, "Docker <version>, Compose v2") when the docker runtime can run here, else (False, why not)."""
    try:
        client = docker_client(timeout=PING_TIMEOUT_SECONDS)
        command = compose_command()
        version = client.version().get("Version", "?")
    except EngineUnavailableError as exc:
        return False, str(exc)
    return True, f"Docker {version}, {' '.join(command)} v2"
