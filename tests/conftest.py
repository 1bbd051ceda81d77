"""Shared fixtures: a throwaway project directory and the CLI runner."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """An empty project directory; tests pass it as --project-dir."""
    path = tmp_path / "project"
    path.mkdir()
    return path


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's own config, colours or cloud credentials."""
    for name in list(os.environ):
        if name.startswith(("SENSOR_MANAGER_", "COSMOS_", "S3_", "AWS_")) or name in {
            "SENSORS_PER_CITY", "MAX_CITIES", "READINGS_PER_SECOND", "ANOMALY_PROBABILITY", "UPLOAD_INTERVAL",
        }:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")


def _tree_listing(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(root)), p.stat().st_size if p.is_file() else -1) for p in root.rglob("*"))


@pytest.fixture
def tree_listing():
    """`tree_listing(root)`: relative paths and sizes; compare before/after to prove nothing changed."""
    return _tree_listing
