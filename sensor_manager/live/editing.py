"""`set KEY=VALUE …`: change keys in the config file in place, keeping its comments and layout.

Everything is checked before the file is written: each assignment's form, the edited config as a
whole (`load_config`, every problem at once), and, while the fleet runs, that each key is reloadable.
A value is read as YAML (`50`, `true`, `sanitized`, `[a, b]`, `{x: 1}`).
"""
from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleetcore.atomicfiles import write_atomic
from fleetcore.errors import ConfigError, UsageError
from sensor_manager.config_reference import is_reloadable
from sensor_manager.simulator.live import leaf_values

_FLUSH_LIST = re.compile(r"^( *)[^\s#-][^\n]*:[ \t]*\n\1- ", re.MULTILINE)
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_.-]*[A-Za-z0-9_-])*$")


@dataclass(frozen=True)
class Assignment:
    key: str
    value: Any

    @property
    def path(self) -> list[str]:
        return self.key.split(".")

    def keys(self) -> list[str]:
        """The key and, for a mapping value, every key under it."""
        if isinstance(self.value, dict):
            return [f"{self.key}.{leaf}" for leaf in leaf_values(self.value)]
        return [self.key]


def parse_assignments(items: list[str]) -> list[Assignment]:
    if not items:
        raise UsageError("set: give at least one KEY=VALUE, e.g. simulation.readings_per_second=50")
    assignments = []
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not _KEY.match(key):
            raise UsageError(f"{item!r}: expected KEY=VALUE with a dotted key, e.g. anomalies.probability=0.1")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise UsageError(f"{key}: value {text!r} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if value is None:
            raise UsageError(f"{key}: give a value (KEY=VALUE); to unset a key, edit the config file")
        assignments.append(Assignment(key, value))
    return assignments


def restart_needed(assignments: list[Assignment]) -> list[str]:
    return [key for a in assignments for key in a.keys() if not is_reloadable(key)]


def edited_text(text: str, assignments: list[Assignment], label: str) -> str:
    """The config text with each assignment applied (ruamel round trip: comments and order kept)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    parser = YAML()
    parser.preserve_quotes = True
    # Keep the file's list style: items indented under their key (the shipped config) or flush with it.
    flush = _FLUSH_LIST.search(text) is not None
    parser.indent(mapping=2, sequence=2 if flush else 4, offset=0 if flush else 2)
    try:
        document = parser.load(text) if text.strip() else None
    except YAMLError as exc:
        raise ConfigError(f"{label}: invalid YAML: {str(exc).splitlines()[0]}") from None
    if document is None:
        from ruamel.yaml.comments import CommentedMap

        document = CommentedMap()
    if not isinstance(document, dict):
        raise ConfigError(f"{label}: the top level must be a mapping of keys")
    for assignment in assignments:
        node = document
        for depth, part in enumerate(assignment.path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = type(document)()
            elif not isinstance(child, dict):
                where = ".".join(assignment.path[:depth + 1])
                raise UsageError(f"{assignment.key}: {where} is not a mapping in {label}; edit the file for this change")
            node = child
        node[assignment.path[-1]] = assignment.value
    out = io.StringIO()
    parser.dump(document, out)
    return out.getvalue()


def write_edited(path: Path, project_dir: Path, assignments: list[Assignment], start_from: Path | None = None) -> None:
    """Validate the edited config as `load_config` would read it, then replace the file (same mode).

    `start_from`: the file whose text is edited when `path` does not exist yet (the bundled default)."""
    from sensor_manager.config import load_config

    text = (start_from or path).read_text(encoding="utf-8")
    new_text = edited_text(text, assignments, str(path))
    candidate = path.with_name(f".{path.name}.set-{os.getpid()}.tmp")
    try:
        candidate.write_text(new_text, encoding="utf-8")
        load_config(candidate, project_dir)
    except ConfigError as exc:
        raise ConfigError([line.replace(str(candidate), str(path)) for line in exc.problems]) from None
    finally:
        candidate.unlink(missing_ok=True)
    write_atomic(path, new_text, mode=path.stat().st_mode & 0o777 if path.exists() else 0o644)
