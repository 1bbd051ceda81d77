"""The Docker engine and the project image for `@pytest.mark.docker` tests.

The engine is found through $DOCKER_HOST, then /tmp/docker-env (written by the shared engine recipe),
then /var/lib/sm-docker-engine/docker.sock. Without one these tests skip with the reason, except under
CI=true, where a missing engine fails them. The image is built once per session from a wheelhouse
cached across runs (compose/ci-engine.sh keeps it under /var/cache/sm-docker-engine).
"""
from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

import pytest

ENGINE_ENV_FILE = Path("/tmp/docker-env")
DEFAULT_SOCKET = Path("/var/lib/sm-docker-engine/docker.sock")
WHEELHOUSE_CACHE = Path("/var/cache/sm-docker-engine/wheelhouse")
REPO_ROOT = Path(__file__).resolve().parents[2]


def _engine_environment() -> dict[str, str]:
    """DOCKER_HOST (and BASE_IMAGE) from wherever this machine keeps them."""
    found: dict[str, str] = {}
    if not os.environ.get("DOCKER_HOST") and ENGINE_ENV_FILE.is_file():
        for token in ENGINE_ENV_FILE.read_text().replace("export ", "").split():
            key, _, value = token.partition("=")
            if key in ("DOCKER_HOST", "BASE_IMAGE") and value:
                found[key] = value
    if not os.environ.get("DOCKER_HOST") and "DOCKER_HOST" not in found and DEFAULT_SOCKET.exists():
        found["DOCKER_HOST"] = f"unix://{DEFAULT_SOCKET}"
    return {k: v for k, v in found.items() if not os.environ.get(k)}


@pytest.fixture(scope="session")
def docker_engine():
    """A docker SDK client of a working engine with Compose v2; skip (or fail under CI=true) without one."""
    os.environ.update(_engine_environment())
    from sensor_manager.runtimes.engine import docker_client, engine_available

    ok, why = engine_available()
    if not ok:
        message = f"no usable Docker engine: {why}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: the docker tests must run; see compose/ci-engine.sh)")
        pytest.skip(message)
    return docker_client()


@pytest.fixture(autouse=True)
def _engine_for_docker_tests(request):
    if request.node.get_closest_marker("docker"):
        request.getfixturevalue("docker_engine")


def _wheelhouse_root() -> Path:
    if os.environ.get("SM_WHEELHOUSE_CACHE"):
        return Path(os.environ["SM_WHEELHOUSE_CACHE"])
    try:
        WHEELHOUSE_CACHE.mkdir(parents=True, exist_ok=True)
        if os.access(WHEELHOUSE_CACHE, os.W_OK):
            return WHEELHOUSE_CACHE
    except OSError:
        pass
    return REPO_ROOT / "state" / "wheelhouse"


@pytest.fixture(scope="session")
def docker_settings_for_tests():
    """Fast healthchecks and the shared wheelhouse; everything else as shipped."""
    from sensor_manager.runtimes.compose_settings import DockerSettings

    return DockerSettings(healthcheck_interval_seconds=2, start_period_seconds=30, wheelhouse=str(_wheelhouse_root()),
                          stop_grace_seconds=5)


@pytest.fixture(scope="session")
def project_image(docker_engine, docker_settings_for_tests, tmp_path_factory):
    """The project image for this source tree, built once (progress on stderr); older test-built tags are removed after."""
    from sensor_manager.layout import ProjectLayout
    from sensor_manager.runtimes import image as images
    from sensor_manager.runtimes.compose_settings import resolve_base_image

    layout = ProjectLayout(tmp_path_factory.mktemp("image-build"))
    result = images.build_image(
        docker_engine, layout, docker_settings_for_tests, base_image=resolve_base_image(docker_settings_for_tests),
        progress=lambda line: sys.stderr.write(line + "\n"),
    )
    yield result.tag
    _remove_older_project_images(docker_engine, keep=result.tag)


def _remove_older_project_images(client, keep: str) -> None:
    from docker.errors import APIError

    from sensor_manager.runtimes.image import IMAGE_LABEL

    older = [image for image in client.images.list(filters={"label": f"{IMAGE_LABEL}=1"}) if keep not in image.tags]
    # The dependency stage stays as an untagged image (the layer cache): keep only the newest one.
    stages = sorted(client.images.list(filters={"label": f"{IMAGE_LABEL}=deps", "dangling": True}),
                    key=lambda image: image.attrs.get("Created", ""))
    for image in older + stages[:-1]:
        try:
            client.images.remove(image.id, noprune=False)
        except APIError:
            pass  # still used by a container, or shared: leave it


def _db_seqs(path: Path) -> list[int]:
    """Every seq in a sensor DB, read-only (empty while the DB or its table does not exist yet)."""
    if not path.is_file():
        return []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        try:
            return [row[0] for row in conn.execute("SELECT seq FROM sensor_readings ORDER BY rowid")]
        except sqlite3.OperationalError:
            return []


@pytest.fixture
def db_seqs():
    return _db_seqs
