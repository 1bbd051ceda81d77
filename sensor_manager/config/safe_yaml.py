"""Reading a config file: size-capped UTF-8, safe YAML without alias bombs or duplicate keys, a mapping on top."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sensor_manager.config.problems import _Problems

MAX_CONFIG_BYTES = 1_000_000
MAX_YAML_ALIASES = 100
MAX_YAML_NODES = 100_000  # after aliases are expanded: a few aliases can still multiply into billions


class _GuardedLoader(yaml.SafeLoader):
    """SafeLoader that rejects alias bombs (too many aliases) and duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_YAML_ALIASES} aliases (a YAML alias bomb?)")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):  # noqa: ANN001
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                mark = key_node.start_mark
                raise yaml.YAMLError(f"line {mark.line + 1}: duplicate key {key!r}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path, label: str, problems: _Problems) -> dict[str, Any] | None:
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            problems.add(label, "", f"larger than {MAX_CONFIG_BYTES} bytes; not a config file?")
            return None
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        problems.add(label, "", "not UTF-8 text")
        return None
    except OSError as exc:
        problems.add(label, "", f"cannot read config: {exc.strerror or exc}")
        return None
    try:
        data = yaml.load(text, Loader=_GuardedLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problems.add(label, "", f"invalid YAML: {where}{exc.problem or exc}")
        return None
    except yaml.YAMLError as exc:
        problems.add(label, "", f"invalid YAML: {exc}")
        return None
    except RecursionError:
        problems.add(label, "", "invalid YAML: nested too deeply")
        return None
    if data is None:
        return {}
    if _expanded_size_exceeds(data, MAX_YAML_NODES):
        problems.add(label, "", f"expands to more than {MAX_YAML_NODES} values through aliases (a YAML alias bomb?)")
        return None
    if not isinstance(data, dict):
        problems.add(label, "", f"the top level must be a mapping of keys, not a {type(data).__name__}")
        return None
    return data


def _expanded_size_exceeds(data: Any, limit: int) -> bool:
    """Whether walking `data` (shared alias nodes counted each time they appear) exceeds `limit` values."""
    count = 0
    stack = [data]
    while stack:
        node = stack.pop()
        count += 1
        if count > limit:
            return True
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False
