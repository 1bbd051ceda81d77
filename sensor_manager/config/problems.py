"""The wording every part of config loading shares: problem lines, key paths, did-you-mean."""
from __future__ import annotations

import difflib
from typing import Any


class _Problems:
    """Collects `<where>: <key.path>: <problem>` lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, where: str, path: str, problem: str) -> None:
        self.lines.append(f"{where}: {path}: {problem}" if path else f"{where}: {problem}")


def _did_you_mean(word: str, candidates: Any) -> str:
    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""


def _format_path(loc: tuple[Any, ...] | list[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
