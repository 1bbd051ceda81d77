"""The config key reference, rendered from the pydantic models so the docs' table cannot drift.

docs/configuration.md embeds `markdown_table()` and `full_example()` through cog; `tests/test_docs.py`
runs `cog --check`.
"""
from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from sensor_manager.config import ENV_VARS, Config
from uploader.reload import is_reloadable as uploader_is_reloadable

# Sections whose per-item keys are described once, with a placeholder for the item name.
_MAPPING_PLACEHOLDERS = {"types": "<type>", "modifiers": "<variant>"}
# Keys kept from the seed that no code reads yet; the sinks issue gives them meaning (then drop them here).
NOT_USED_YET: tuple[str, ...] = ()
NOTES = {
    "project": "project name: lake rows carry it; `clean` deletes by it",
    "seed": "fleet seed: sensor codes, coordinates, device variants, values",
    "max_cities": "use the first N cities (more than listed: next ones from the bundled table)",
    "runtime": "auto = docker when an engine and Compose v2 answer, else local",
    "cities": "default: Amsterdam, Berlin, London, New York, Tokyo",
    "cities[].name": "a bundled city needs no coordinates (config/cities.yaml)",
    "simulation.commit_interval_seconds": "at most this much time of readings per commit",
    "anomalies.missing_data_mode": "skip: no rows for the window; null: rows with NULL metrics",
    "devices.modifiers": "multipliers by manufacturer, model or firmware prefix (`1.4.x`)",
    "uploader.stage": "the stage whose output a sink receives unless it names its own (docs/stages.md)",
    "uploader.naive_timestamps": "how 2025-05 DBs' zone-less timestamps are read",
    **dict.fromkeys(NOT_USED_YET, "not used yet (sinks issue)"),
}
# Keys a running fleet applies within 2 s of a config change (docs/live-changes.md). The simulators apply
# these: each pattern names a key and every key under it; `*` stands for one key segment. The uploaders
# apply theirs (`uploader/reload.py`) at a batch boundary.
RELOADABLE: tuple[str, ...] = (
    "simulation.readings_per_second",
    "anomalies",
    "devices.modifiers",
    "faults",
)


def is_reloadable(key: str) -> bool:
    """Whether a dotted key (placeholders like `<type>` or `[]` included) is applied without a restart."""
    if uploader_is_reloadable(key):
        return True
    parts = key.replace("[]", "").split(".")
    for pattern in RELOADABLE:
        wanted = pattern.split(".")
        if len(parts) >= len(wanted) and all(w in ("*", p) or (p.startswith("<") and w == "*")
                                             for w, p in zip(wanted, parts[:len(wanted)], strict=True)):
            return True
    return False


@dataclass(frozen=True)
class KeyDoc:
    key: str
    type: str
    default: str
    bounds: str
    env: str
    description: str


def _type_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " \\| ".join(names) + (" or null" if type(None) in args else "")
    if origin in (list, tuple):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"map of {_type_name(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return getattr(annotation, "__name__", str(annotation))


def _bounds(info: FieldInfo) -> str:
    parts = []
    for item in info.metadata:
        for kind, attr, symbol in ((Ge, "ge", "≥"), (Gt, "gt", ">"), (Le, "le", "≤"), (Lt, "lt", "<")):
            if isinstance(item, kind):
                value = getattr(item, attr)
                parts.append(f"{symbol} {value:,}" if isinstance(value, int) else f"{symbol} {value}")
        if isinstance(item, MinLen):
            parts.append(f"length ≥ {item.min_length}")
        if isinstance(item, MaxLen):
            parts.append(f"length ≤ {item.max_length}")
    return ", ".join(parts)


def _default(info: FieldInfo, value, has_instance: bool) -> str:
    if info.is_required() and not has_instance:
        return "required"
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, (list, dict)) and value and _nested_model(info.annotation):
        return "built-in table (see config/sensor-manager.yaml)"
    return json.dumps(value, default=str)


def _nested_model(annotation) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def iter_keys(model: type[BaseModel] = Config, prefix: str = "", instance: BaseModel | None = None) -> Iterator[KeyDoc]:
    """Every key under `model`, with defaults read from `instance` (the model's default, when it has one)."""
    env_by_key = {key: name for name, key in ENV_VARS.items()}
    if instance is None and prefix == "":
        instance = model()
    for name, info in model.model_fields.items():
        if info.exclude:
            continue
        key = f"{prefix}{name}"
        nested = _nested_model(info.annotation)
        value = getattr(instance, name) if instance is not None else info.get_default(call_default_factory=True)
        yield KeyDoc(
            key=key,
            type=_type_name(info.annotation),
            default=_default(info, value, instance is not None),
            bounds=_bounds(info),
            env=env_by_key.get(key, ""),
            description=info.description or NOTES.get(key, ""),
        )
        if nested is None or nested is model:
            continue
        origin = typing.get_origin(info.annotation)
        if origin is dict:
            yield from iter_keys(nested, f"{key}.{_MAPPING_PLACEHOLDERS.get(name, '<name>')}.", None)
        elif origin is list:
            yield from iter_keys(nested, f"{key}[].", None)
        else:
            yield from iter_keys(nested, f"{key}.", value if isinstance(value, BaseModel) else None)


def markdown_table() -> str:
    rows = ["| key | type | default | bounds | environment | reloadable | notes |", "|---|---|---|---|---|---|---|"]
    for doc in iter_keys():
        reload = "yes" if is_reloadable(doc.key) else "no"
        env = f"`{doc.env}`" if doc.env else ""
        rows.append(f"| `{doc.key}` | {doc.type} | `{doc.default}` | {doc.bounds} | {env} | {reload} | {doc.description} |")
    return "\n".join(rows)


def full_example() -> str:
    """The bundled config resolved, every key at its value, secrets redacted (a complete example file)."""
    import yaml

    from sensor_manager.config import load_config

    return yaml.safe_dump(load_config().redacted(), sort_keys=False, allow_unicode=True, width=100)
