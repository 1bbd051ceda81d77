"""The seed's Cosmos uploader config (`cosmos-config.yaml`, or the seed's `config/config.yaml`) mapped onto ours.

Every key the seed's files use (its C# `AppSettings` and the keys its example files add) is either
mapped (`MAPPED`) or named as not applicable with the reason (`NOT_APPLICABLE`); any other key is a
problem naming it. Nothing is silently ignored. Two uses:
- `--cosmos-config FILE` (start, upload, config validate, query, diagnostics): an overlay applied by
  `load_config` above the environment (it is a flag), its `${VAR:-default}` expanded as in our file;
- `config import-cosmos FILE`: the mapped section as YAML, `${VAR}` kept as written and a literal key
  replaced by `${COSMOS_KEY}` (a secret never lands in a config file).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from fleetcore.errors import ConfigError
from sensor_manager.config.problems import _did_you_mean, _Problems
from sensor_manager.config.safe_yaml import _read_yaml

COSMOS = ("uploader", "sinks", "cosmos")
KEY_VARIABLE = "${COSMOS_KEY}"


def _stage(processors: Any) -> str:
    """The seed's processor list as our stage: its last processor named the documents' stage."""
    if not isinstance(processors, list) or not all(isinstance(p, str) for p in processors):
        raise ValueError("must be a list of processor names (Schematize, Sanitize)")
    names = [p.strip().casefold() for p in processors]
    unknown = [p for p, n in zip(processors, names, strict=True) if n not in ("schematize", "sanitize")]
    if unknown:
        raise ValueError(f"unknown processor {unknown[0]!r}: the seed knew Schematize and Sanitize")
    return "sanitized" if "sanitize" in names else "schematized" if names else "raw"


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Mapped:
    target: tuple[str, ...]
    convert: Callable[[Any], Any] = _same


MAPPED: dict[str, Mapped] = {
    "cosmos.endpoint": Mapped((*COSMOS, "endpoint")),
    "cosmos.key": Mapped((*COSMOS, "key")),
    "cosmos.database_name": Mapped((*COSMOS, "database_name")),
    "cosmos.database": Mapped((*COSMOS, "database_name")),  # the example files' spelling, which the seed dropped
    "cosmos.container_name": Mapped((*COSMOS, "container_name")),
    "cosmos.container": Mapped((*COSMOS, "container_name")),
    "cosmos.partition_key": Mapped((*COSMOS, "partition_key")),
    "cosmos.performance.preferred_regions": Mapped((*COSMOS, "preferred_regions")),
    "performance.batch_size": Mapped((*COSMOS, "batch_size")),
    "performance.max_parallel_operations": Mapped((*COSMOS, "max_in_flight")),
    "performance.upload_interval_seconds": Mapped(("uploader", "interval_seconds")),
    "processing.processors": Mapped(("uploader", "stage"), _stage),
    "processing.aggregation.window": Mapped(("uploader", "stage"), lambda window: "aggregated"),
    "cities": Mapped(("cities",)),
}

_CONNECTION = ("the Python SDK always speaks gateway mode over HTTPS; throttling (429) waits the server's "
               "x-ms-retry-after-ms, then uploader.sinks.cosmos.retry (the seed hard-coded these too)")
NOT_APPLICABLE: dict[str, str] = {
    "cosmos.resource_group": "a management-plane name; endpoint and key are all the data plane needs (the seed never read it)",
    **{f"cosmos.connection.{key}": _CONNECTION for key in (
        "mode", "protocol", "max_retry_attempts", "max_retry_wait_time_in_seconds", "max_retry_wait_time",
        "connection_timeout", "enable_endpoint_discovery", "retry_total", "retry_backoff_max")},
    "cosmos.performance.enable_endpoint_discovery": "the SDK discovers the account's regions itself; preferred_regions orders them",
    "cosmos.performance.bulk_execution": "the Python SDK has no bulk mode; the sink keeps uploader.sinks.cosmos.max_in_flight "
                                         "requests in flight per partition instead",
    "performance.throughput": "throughput belongs to the account or container (a serverless account has none to set); "
                              "the sink never provisions it",
    "performance.autoscale": "throughput belongs to the account or container; the sink never changes it",
    "performance.disable_indexing_during_bulk": "the container's indexing policy is the account owner's; the sink never changes it",
    "performance.upload_jitter_seconds": "no equivalent: uploaders poll every uploader.interval_seconds and back off with full "
                                         "jitter on errors (the seed ignored this key)",
    "performance.sleep_interval": "the seed ignored it; the poll interval is uploader.interval_seconds (or upload --interval)",
    "logging.level": "pass -v (more) or -q (errors only) to the command",
    "logging.log_request_units": "request units are always reported, in the uploader's status file",
    "logging.log_latency": "the uploader's status file and monitor report each sink's lag",
    "config_watch.enabled": "the seed's watcher had no effect; restart the uploaders after a change",
    "config_watch.poll_interval_seconds": "the seed's watcher had no effect; restart the uploaders after a change",
}

# Keys that hold other keys: walked, never mapped whole.
BRANCHES = frozenset({"cosmos", "cosmos.connection", "cosmos.performance", "performance", "logging",
                      "config_watch", "processing", "processing.aggregation"})


@dataclass
class SeedMapping:
    """The seed file's keys as ours: `section` (nested, values as written) and, per key path we set, the seed key."""

    label: str  # how messages name the file: `--cosmos-config <path>`
    path: str = ""
    section: dict[str, Any] = field(default_factory=dict)
    sources: dict[tuple[str, ...], str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    problems: _Problems = field(default_factory=_Problems)


def map_seed_config(data: Mapping[str, Any], label: str, path: str = "") -> SeedMapping:
    mapping = SeedMapping(label, path)
    _walk(data, "", mapping)
    if any(source.startswith("cosmos.") for source in mapping.sources.values()):
        # Giving the seed's Cosmos config asks for the sink; first, so the section reads `enabled: true` on top.
        cosmos = mapping.section["uploader"]["sinks"]["cosmos"]
        mapping.section["uploader"]["sinks"]["cosmos"] = {"enabled": True, **cosmos}
        mapping.sources[(*COSMOS, "enabled")] = "cosmos"
    return mapping


def _walk(node: Mapping[str, Any], prefix: str, mapping: SeedMapping) -> None:
    for name, value in node.items():
        dotted = f"{prefix}{name}"
        if dotted in MAPPED:
            _map(dotted, value, mapping)
        elif dotted in NOT_APPLICABLE:
            mapping.notes.append(f"{mapping.label}: {dotted}: not applicable: {NOT_APPLICABLE[dotted]}")
        elif dotted in BRANCHES:
            if isinstance(value, Mapping):
                _walk(value, f"{dotted}.", mapping)
            elif value is not None:
                mapping.problems.add(mapping.label, dotted, "must be a mapping of keys")
        else:
            siblings = [k[len(prefix):].split(".")[0] for k in (*MAPPED, *NOT_APPLICABLE, *BRANCHES) if k.startswith(prefix)]
            mapping.problems.add(mapping.label, dotted, f"unknown key {str(name)!r} in the seed's Cosmos config"
                                                        f"{_did_you_mean(str(name), set(siblings))}")


def _map(dotted: str, value: Any, mapping: SeedMapping) -> None:
    rule = MAPPED[dotted]
    if rule.target in mapping.sources:
        earlier = mapping.sources[rule.target]
        mapping.problems.add(mapping.label, dotted, f"sets {'.'.join(rule.target)} as {earlier} does; keep one of them")
        return
    try:
        converted = rule.convert(value)
    except ValueError as exc:
        mapping.problems.add(mapping.label, dotted, str(exc))
        return
    _put(mapping.section, rule.target, converted)
    mapping.sources[rule.target] = dotted


def _put(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def read_seed_config(path: str | os.PathLike[str], flag: str = "--cosmos-config") -> SeedMapping:
    """The file `path` names, mapped; a file we cannot read, or any unknown key, is a ConfigError naming it."""
    path = Path(path).expanduser()
    label = f"{flag} {path}"
    if not path.is_file():
        raise ConfigError(f"{label}: file not found")
    problems = _Problems()
    data = _read_yaml(path, label, problems)
    if data is None:
        raise ConfigError(problems.lines)
    mapping = map_seed_config(data, label, str(path))
    if mapping.problems.lines:
        raise ConfigError(mapping.problems.lines)
    if (*COSMOS, "enabled") not in mapping.sources:
        raise ConfigError(f"{label}: no Cosmos settings in it (expected a cosmos: section with endpoint and key)")
    return mapping


def apply_seed_overlay(raw: dict[str, Any], mapping: SeedMapping, env: Mapping[str, str], problems: _Problems,
                       origins: dict) -> None:
    """Set the mapped keys in `raw` (over the file and environment), `${VAR}` expanded; each origin names the seed key."""
    from sensor_manager.config.sources import _expand, _set

    for target, seed_key in mapping.sources.items():
        where = f"{mapping.label}: {seed_key} (sets {'.'.join(target)})"
        value = _get_path(mapping.section, target)
        _set(raw, target, _expand(value, env, (), problems, where, {}))
        origins[target] = where


def _get_path(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


def section_yaml(mapping: SeedMapping) -> str:
    """`config import-cosmos`: the mapped keys as a YAML block for sensor-manager.yaml, the notes as comments."""
    import yaml

    section = _without_literal_key(mapping.section)
    lines = [f"# uploader.sinks.cosmos from the seed's Cosmos config {mapping.path} (config import-cosmos);",
             "# check it with: ./sensor_manager.py config validate"]
    lines += [f"# {note.removeprefix(mapping.label + ': ')}" for note in mapping.notes]
    return "\n".join(lines) + "\n" + yaml.safe_dump(section, sort_keys=False, allow_unicode=True)


def _without_literal_key(section: dict[str, Any]) -> dict[str, Any]:
    cosmos = section.get("uploader", {}).get("sinks", {}).get("cosmos", {})
    key = cosmos.get("key")
    if isinstance(key, str) and key.strip().startswith("${"):
        return section
    copy = {**section, "uploader": {**section["uploader"], "sinks": {"cosmos": {**cosmos, "key": KEY_VARIABLE}}}}
    return copy if key is not None else section


def literal_key_replaced(mapping: SeedMapping) -> bool:
    key = mapping.section.get("uploader", {}).get("sinks", {}).get("cosmos", {}).get("key")
    return isinstance(key, str) and not key.strip().startswith("${")
