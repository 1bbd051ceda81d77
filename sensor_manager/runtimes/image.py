"""The container image: a content-addressed tag, an offline wheelhouse, and an air-gapped build.

Tag = `<repository>:<version>-<12 hex>`, the hash covering the source tree, the pinned requirements,
compose/Dockerfile and the base image id: the same inputs give the same tag on every machine, a changed
input a new one, and `latest` is never used. The build runs with `--network none`; its Python wheels
come from a wheelhouse under `state/wheelhouse/<python-tag>-<platform>` that `pip download` fills on
the host for the base image's own Python version and platform (read from the image).
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable

from fleetcore.errors import ProcessFailedError, UsageError
from sensor_manager import __version__
from sensor_manager.layout import REPO_ROOT, ProjectLayout
from sensor_manager.runtimes.compose_settings import DockerSettings, docker_settings, resolve_base_image

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
DOCKERFILE = REPO_ROOT / "compose" / "Dockerfile"
SOURCE_DIRS = ("fleetcore", "sensor_manager", "uploader", "config")
SOURCE_FILES = ("pyproject.toml",)
LOCK_FILES = ("requirements.lock", "requirements.txt", "uv.lock", "poetry.lock", "pylock.toml")
BUILD_REQUIREMENTS = ("setuptools>=68",)
IMAGE_LABEL = "io.sensor-manager.image"
TAG_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")

_PROBE = (
    "import json, platform, sys; "
    "print(json.dumps({'version': '%d.%d' % sys.version_info[:2], 'impl': sys.implementation.name, "
    "'libc': platform.libc_ver(), 'machine': platform.machine()}))"
)


@dataclass(frozen=True)
class ImageOptions:
    """How `start` gets its image (the seed's --no-rebuild, --tag T, --no-tag, --uploader-tag T map here)."""

    tag: str | None = None  # use <repository>:<tag> instead of the content tag (--tag / --uploader-tag)
    build: bool = True  # build when the image is missing (False: --no-rebuild, a missing image is an error)
    base_image: str | None = None  # --base-image


@dataclass(frozen=True)
class BasePython:
    """What the base image's interpreter accepts: the wheelhouse is made for exactly this."""

    image: str
    image_id: str
    version: str  # "3.11"
    machine: str  # "x86_64"
    glibc: tuple[int, int]

    @property
    def python_tag(self) -> str:
        return "cp" + self.version.replace(".", "")

    @property
    def platform(self) -> str:
        return f"manylinux_{self.glibc[0]}_{self.glibc[1]}_{self.machine}"

    @property
    def wheelhouse_name(self) -> str:
        return f"{self.python_tag}-{self.platform}"

    def pip_platforms(self) -> list[str]:
        """Every manylinux tag this glibc accepts, newest first (pip does not expand them itself)."""
        major, minor = self.glibc
        platforms = [f"manylinux_{major}_{m}_{self.machine}" for m in range(minor, 16, -1)]
        legacy = {"manylinux2014": 17, "manylinux2010": 12, "manylinux1": 5}
        platforms += [f"{name}_{self.machine}" for name, needs in legacy.items() if minor >= needs]
        return platforms


@dataclass(frozen=True)
class BuildResult:
    tag: str
    image_id: str
    built: bool  # False when the tag already existed
    seconds: float
    pushed: str | None = None
    saved: str | None = None  # the tarball `build --save FILE` wrote


# ---- inputs and the tag --------------------------------------------------------------------------

def source_root() -> Path:
    """The source tree the image is built from (an installed wheel has no pyproject.toml to build with)."""
    if not (REPO_ROOT / "pyproject.toml").is_file() or not DOCKERFILE.is_file():
        raise UsageError(f"{REPO_ROOT}: no pyproject.toml or compose/Dockerfile; building the image needs the source tree")
    return REPO_ROOT


def source_files(root: Path) -> list[Path]:
    """Files that go into the image, sorted: the packages, the bundled config, pyproject and lock files."""
    files: list[Path] = []
    for name in SOURCE_DIRS:
        for path in (root / name).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in {".pyc", ".pyo"}:
                files.append(path)
    files += [root / name for name in (*SOURCE_FILES, *LOCK_FILES) if (root / name).is_file()]
    return sorted(files)


def pinned_requirements(root: Path) -> list[str]:
    """The project's dependencies pinned to the versions installed here (the ones the tests ran with)."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    pinned = []
    for requirement in project.get("dependencies", []):
        name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]
        try:
            pinned.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pinned.append(requirement)
    return pinned


def content_hash(root: Path, requirements: Iterable[str], base_image_id: str) -> str:
    digest = hashlib.sha256()
    for path in source_files(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(DOCKERFILE.read_bytes() + b"\0")
    digest.update("\n".join(requirements).encode() + b"\0")
    digest.update(base_image_id.encode())
    return digest.hexdigest()[:12]


def validate_tag(tag: str | None) -> str | None:
    if tag is not None and (not TAG_PATTERN.match(tag) or tag == "latest"):
        raise UsageError(f"--tag {tag!r}: use letters, digits, '_', '.', '-' (at most 128), and not 'latest'")
    return tag


def image_tag(settings: DockerSettings, content: str, tag: str | None = None) -> str:
    """`<repository>:<version>-<hash>`, or `<repository>:<tag>` when asked for one (never `latest`)."""
    if validate_tag(tag) is not None:
        return f"{settings.image_repository}:{tag}"
    return f"{settings.image_repository}:{__version__}-{content}"


# ---- the base image ------------------------------------------------------------------------------

def ensure_base_image(client, image: str, progress: Progress) -> str:
    """The base image's id, pulling it once when it is not here yet."""
    from docker.errors import APIError, ImageNotFound

    try:
        return client.images.get(image).id
    except ImageNotFound:
        pass
    progress(f"Pulling base image {image} (set BASE_IMAGE or --base-image to use a local one).")
    try:
        return client.images.pull(image).id
    except APIError as exc:
        raise ProcessFailedError(
            f"base image {image} is not here and cannot be pulled ({exc.explanation or exc}); "
            "load it with `docker load` or pass --base-image / BASE_IMAGE naming a local image"
        ) from None


def probe_base_python(client, image: str, image_id: str) -> BasePython:
    """Run the base image's python3 once (no network) to learn its version, libc and machine."""
    try:
        output = client.containers.run(
            image_id, ["python3", "-c", _PROBE], network_mode="none", remove=True, stdout=True, stderr=True,
            labels={IMAGE_LABEL: "probe"},
        )
        facts = json.loads(output.decode().strip().splitlines()[-1])
    except Exception as exc:
        raise ProcessFailedError(f"base image {image}: cannot run python3 in it ({str(exc).splitlines()[0][:200]})") from None
    libc_name, libc_version = facts["libc"]
    if facts["impl"] != "cpython" or libc_name != "glibc":
        raise UsageError(f"base image {image}: needs CPython on glibc (found {facts['impl']} on {libc_name or 'another libc'})")
    major, minor = (int(part) for part in libc_version.split(".")[:2])
    return BasePython(image, image_id, facts["version"], facts["machine"], (major, minor))


# ---- the wheelhouse ------------------------------------------------------------------------------

def wheelhouse_dir(layout: ProjectLayout, settings: DockerSettings, base: BasePython) -> Path:
    root = Path(settings.wheelhouse).expanduser() if settings.wheelhouse else layout.state / "wheelhouse"
    if not root.is_absolute():
        root = layout.root / root
    return root / base.wheelhouse_name


def ensure_wheelhouse(directory: Path, base: BasePython, requirements: list[str], progress: Progress) -> bool:
    """Fill `directory` with wheels for the base image; False when it already held them (a stamp says so)."""
    wanted = "\n".join([*requirements, *BUILD_REQUIREMENTS]) + "\n"
    stamp = directory / "requirements.stamp"
    if stamp.is_file() and stamp.read_text() == wanted:
        return False
    directory.mkdir(parents=True, exist_ok=True)
    progress(f"Downloading wheels for {base.python_tag} {base.platform} into {directory}.")
    command = [
        sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--only-binary=:all:",
        "--python-version", base.version, "--implementation", "cp", "--abi", base.python_tag,
        *[arg for platform in base.pip_platforms() for arg in ("--platform", platform)],
        "--dest", str(directory), *requirements, *BUILD_REQUIREMENTS,
    ]
    log.debug("run: %s", shlex.join(command))
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        problems = [line for line in result.stderr.splitlines() if line.startswith("ERROR")] or result.stderr.splitlines()[-3:]
        raise ProcessFailedError(f"pip download for {base.wheelhouse_name} failed: {' '.join(problems)[:500]}")
    (directory / "requirements.txt").write_text("\n".join(requirements) + "\n")
    stamp.write_text(wanted)
    return True


# ---- the build -----------------------------------------------------------------------------------

def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def assemble_context(context: Path, root: Path, wheelhouse: Path) -> None:
    """Dockerfile + wheels/ + build-wheels/ (setuptools) + src/: only what the image needs, nothing from state/."""
    shutil.copy2(DOCKERFILE, context / "Dockerfile")
    for wheel in wheelhouse.glob("*.whl"):
        _link_or_copy(wheel, context / "wheels" / wheel.name)
        if wheel.name.startswith("setuptools-"):
            _link_or_copy(wheel, context / "build-wheels" / wheel.name)
    shutil.copy2(wheelhouse / "requirements.txt", context / "wheels" / "requirements.txt")
    for path in source_files(root):
        _link_or_copy(path, context / "src" / path.relative_to(root))
    readme = root / "README.md"
    target = context / "src" / "README.md"
    if readme.is_file():
        shutil.copy2(readme, target)
    else:  # pyproject names a readme; the package metadata needs one to build
        target.write_text("sensor-manager\n")


def _stream_build(client, context: Path, tag: str, base: BasePython, no_cache: bool, labels: dict, progress: Progress) -> str:
    image_id = ""
    stream = client.api.build(
        path=str(context), tag=tag, network_mode="none", buildargs={"BASE_IMAGE": base.image},
        nocache=no_cache, rm=True, forcerm=True, pull=False, decode=True, labels=labels,
    )
    for chunk in stream:
        if "error" in chunk:
            raise ProcessFailedError(f"image build failed: {str(chunk['error']).strip()[:1000]}")
        text = chunk.get("stream", "")
        for line in text.rstrip("\n").splitlines():
            if line.strip():
                progress(line)
        aux = chunk.get("aux") or {}
        image_id = aux.get("ID", image_id)
    return image_id


def image_exists(client, tag: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        client.images.get(tag)
        return True
    except ImageNotFound:
        return False


@dataclass(frozen=True)
class ImagePlan:
    """What a build would produce: computed without building (cheap: hashes and one probe)."""

    tag: str
    base: BasePython
    requirements: tuple[str, ...]
    wheelhouse: Path


def plan_image(client, layout: ProjectLayout, settings: DockerSettings, base_image: str, tag: str | None, progress: Progress) -> ImagePlan:
    root = source_root()
    base_id = ensure_base_image(client, base_image, progress)
    requirements = pinned_requirements(root)
    final_tag = image_tag(settings, content_hash(root, requirements, base_id), tag)
    base = _probe_cached(client, layout, base_image, base_id)
    return ImagePlan(final_tag, base, tuple(requirements), wheelhouse_dir(layout, settings, base))


def _probe_cached(client, layout: ProjectLayout, image: str, image_id: str) -> BasePython:
    """Probing starts a container; remember the answer per base image id under state/."""
    cache = layout.state / "images" / "base-python.json"
    known = {}
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        pass
    if image_id in known:
        facts = known[image_id]
        return BasePython(image, image_id, facts["version"], facts["machine"], tuple(facts["glibc"]))
    base = probe_base_python(client, image, image_id)
    known[image_id] = {"version": base.version, "machine": base.machine, "glibc": list(base.glibc)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(known, indent=2))
    return base


def build_image(
    client,
    layout: ProjectLayout,
    settings: DockerSettings,
    *,
    base_image: str,
    tag: str | None = None,
    no_cache: bool = False,
    force: bool = False,
    progress: Progress = lambda line: None,
) -> BuildResult:
    """Build the image unless its tag is already here (`force`/`no_cache` rebuild); return its tag."""
    started = time.monotonic()
    plan = plan_image(client, layout, settings, base_image, tag, progress)
    if not (force or no_cache) and image_exists(client, plan.tag):
        return BuildResult(plan.tag, client.images.get(plan.tag).id, False, time.monotonic() - started)
    ensure_wheelhouse(plan.wheelhouse, plan.base, list(plan.requirements), progress)
    progress(f"Building {plan.tag} from {plan.base.image} (offline, --network none).")
    labels = {IMAGE_LABEL: "1", "org.opencontainers.image.version": __version__, "io.sensor-manager.base-image": plan.base.image}
    with tempfile.TemporaryDirectory(prefix="sm-build-", dir=_context_parent(plan.wheelhouse)) as tmp:
        assemble_context(Path(tmp), source_root(), plan.wheelhouse)
        image_id = _stream_build(client, Path(tmp), plan.tag, plan.base, no_cache, labels, progress)
    return BuildResult(plan.tag, image_id or client.images.get(plan.tag).id, True, time.monotonic() - started)


def _context_parent(wheelhouse: Path) -> str:
    # Same file system as the wheelhouse, so wheels are hard-linked into the context, not copied.
    return str(wheelhouse.parent)


def push_image(client, tag: str, registry: str, progress: Progress) -> str:
    """Tag `tag` as `<registry>/<tag>` and push it; only ever on `build --push --registry R`."""
    remote = f"{registry.rstrip('/')}/{tag}"
    repository, _, remote_tag = remote.rpartition(":")
    client.images.get(tag).tag(repository, remote_tag)
    progress(f"Pushing {remote}.")
    for chunk in client.api.push(repository, tag=remote_tag, stream=True, decode=True):
        if "error" in chunk:
            raise ProcessFailedError(f"push to {registry} failed: {chunk['error']}")
        if chunk.get("status") and not chunk.get("progressDetail"):
            progress(f"{chunk.get('id', '')} {chunk['status']}".strip())
    return remote


def validate_save_path(path: Path) -> Path:
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"--save {path}: is a directory; name the tarball to write, e.g. {path / 'sensor-manager.tar'}")
    if not path.parent.is_dir():
        raise UsageError(f"--save {path}: folder {path.parent} does not exist")
    return path


def save_image(client, tag: str, path: Path, progress: Progress) -> str:
    """Write `tag` as a `docker save` tarball (for `docker load` on nodes that cannot pull); atomic: a partial file never remains."""
    path = validate_save_path(path)
    progress(f"Saving {tag} to {path}.")
    partial = path.with_name(f".{path.name}.partial")
    try:
        with open(partial, "wb") as out:
            for chunk in client.images.get(tag).save(named=True):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return str(path)


def build(
    layout: ProjectLayout,
    config,
    *,
    base_image: str | None = None,
    tag: str | None = None,
    no_tag: bool = False,
    no_cache: bool = False,
    push: bool = False,
    registry: str | None = None,
    save: Path | None = None,
    progress: Progress = lambda line: None,
) -> BuildResult:
    """`build`: the image of `config`'s docker settings, built unless up to date, pushed to `registry` on `push`,
    written as a tarball to `save`."""
    if push != bool(registry):
        raise UsageError("--push and --registry go together: `build --push --registry R` pushes to R; nothing is pushed otherwise")
    if tag and no_tag:
        raise UsageError("--tag and --no-tag exclude each other")
    validate_tag(tag)
    if save is not None:
        validate_save_path(save)
    from sensor_manager.runtimes.engine import docker_client

    settings = docker_settings(config)
    client = docker_client()
    result = build_image(client, layout, settings, base_image=resolve_base_image(settings, base_image), tag=tag,
                         no_cache=no_cache, progress=progress)
    if push and registry:
        result = replace(result, pushed=push_image(client, result.tag, registry, progress))
    if save is not None:
        result = replace(result, saved=save_image(client, result.tag, save, progress))
    return result
