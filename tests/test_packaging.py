"""What a non-editable install (the wheel the Docker image is built from) contains."""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_directory_is_listed_in_pyproject():
    """setuptools ships only the listed packages: an unlisted one works editable and is missing from the wheel."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("sensor_manager", "uploader")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert found - listed == set(), f"packages missing from [tool.setuptools] packages: {sorted(found - listed)}"
