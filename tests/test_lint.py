"""Lint and types stay clean: ruff (pyflakes F, bugbear B, import order I) and mypy, both configured in pyproject.toml.

Tests rather than a step in tests/run, so a finding fails `.ci/run` like any other test, shows up in pytest's count
and summary, and a focused `tests/run tests/uploader` does not pay for them.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_finds_nothing():
    result = _run("ruff", "check", "--no-cache", "--output-format", "concise", ".")
    if result.returncode != 0:
        pytest.fail(f"ruff check found problems (`ruff check --fix` sorts imports):\n{result.stdout}{result.stderr}",
                    pytrace=False)


@pytest.mark.slow
def test_mypy_finds_nothing():
    result = _run("mypy")
    if result.returncode != 0:
        pytest.fail(f"mypy found problems:\n{result.stdout}{result.stderr}", pytrace=False)
