#!/usr/bin/env python3
"""Image build times on the real engine: cold, warm after a source change, and the up-to-date check.

cold = empty wheelhouse (pip download included) and --no-cache; warm = the same build after one source
file changed (only the project layer is rebuilt); up_to_date = `build` when the tag already exists
(hashing + one cached probe). baseline = `docker build` of a two-line Dockerfile on the same base image,
in the same run. Builds a copy of the source tree under a throwaway repository name and removes every
image it made. Needs DOCKER_HOST and BASE_IMAGE (e.g. from /tmp/docker-env). --json: one object.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sensor_manager.layout import ProjectLayout  # noqa: E402
from sensor_manager.runtimes import image as images  # noqa: E402
from sensor_manager.runtimes.compose_settings import DockerSettings, resolve_base_image  # noqa: E402
from sensor_manager.runtimes.engine import docker_client  # noqa: E402

REPOSITORY = "sensor-manager-bench"


def copy_tree(target: Path) -> None:
    for name in (*images.SOURCE_DIRS, "compose"):
        shutil.copytree(REPO / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, target / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    client = docker_client()
    started_at = time.time()
    with tempfile.TemporaryDirectory(prefix="sm-build-bench-") as tmp:
        root = Path(tmp)
        copy_tree(root / "src")
        images.REPO_ROOT, images.DOCKERFILE = root / "src", root / "src" / "compose" / "Dockerfile"
        settings = DockerSettings(image_repository=REPOSITORY, wheelhouse=str(root / "wheelhouse"))
        layout = ProjectLayout(root / "project")
        base = resolve_base_image(settings)

        def build(**kwargs) -> float:
            return images.build_image(client, layout, settings, base_image=base, **kwargs).seconds

        cold = build(no_cache=True)
        (root / "src" / "sensor_manager" / "bench_marker.py").write_text(f"# {time.time()}\n")
        warm = build()
        up_to_date = build()
        context = root / "baseline"
        context.mkdir()
        (context / "Dockerfile").write_text(f"FROM {base}\nRUN true\n")
        t0 = time.perf_counter()
        client.images.build(path=str(context), tag=f"{REPOSITORY}:baseline", network_mode="none", nocache=True, rm=True)
        baseline = time.perf_counter() - t0
    for image in client.images.list():
        made_here = image.attrs.get("Created", "") >= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started_at))
        ours = any(tag.startswith(f"{REPOSITORY}:") for tag in image.tags) or (
            not image.tags and image.labels.get(images.IMAGE_LABEL) == "deps" and made_here)
        if ours:
            client.images.remove(image.id, force=True)
    result = {"name": "docker_build", "cold": round(cold, 1), "warm": round(warm, 1), "up_to_date": round(up_to_date, 2),
              "baseline": round(baseline, 1), "ratio_cold": round(cold / baseline, 1), "unit": "s"}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"docker_build: cold {cold:.1f} s (wheelhouse download + --no-cache), warm {warm:.1f} s (one source file changed), "
              f"up to date {up_to_date:.2f} s; baseline trivial build {baseline:.1f} s (cold ratio {result['ratio_cold']}x)")


if __name__ == "__main__":
    main()
