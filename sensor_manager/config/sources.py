"""Where values come from besides the file's own text, each recording its origin for messages.

The file is chosen by lookup; `${VAR:-default}` in it and the seed's variables read the environment
(`.env` under the process environment); flags win over everything. `origins` maps a key path to the
variable or flag that set it, so a bad value is reported against what the user actually typed.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping

from fleetcore.errors import ConfigError
from fleetcore.naming import city_clash_key, safe_city_name
from sensor_manager.config.bundled import DEFAULT_CITIES, bundled_cities, bundled_file
from sensor_manager.config.problems import _did_you_mean, _format_path, _Problems
from sensor_manager.config.redaction import REDACTED, is_secret_key
from sensor_manager.layout import REPO_ROOT

CONFIG_FILE_NAME = "sensor-manager.yaml"
CONFIG_ENV_VAR = "SENSOR_MANAGER_CONFIG"


def config_location(config_path: str | os.PathLike[str] | None, project_dir: str | os.PathLike[str] | None, env: Mapping[str, str]) -> tuple[Path, str]:
    """(path, how it was chosen) by the lookup order; a named but missing file is a ConfigError."""
    if config_path:
        path = Path(config_path).expanduser()
        if not path.exists():
            raise ConfigError(f"{path}: config file not found (given by --config)")
        return path, "--config"
    if env.get(CONFIG_ENV_VAR):
        path = Path(env[CONFIG_ENV_VAR]).expanduser()
        if not path.exists():
            raise ConfigError(f"{path}: config file not found (given by ${CONFIG_ENV_VAR})")
        return path, f"${CONFIG_ENV_VAR}"
    project_file = Path(project_dir or REPO_ROOT) / CONFIG_FILE_NAME
    if project_file.is_file():
        return project_file, "project directory"
    return bundled_file(CONFIG_FILE_NAME), "bundled default"


def environment(project_dir: str | os.PathLike[str] | None) -> dict[str, str]:
    """The environment config sees: `<project-dir>/.env` under the process environment (which wins)."""
    env: dict[str, str] = {}
    dotenv_path = Path(project_dir or REPO_ROOT) / ".env"
    if dotenv_path.is_file():
        from dotenv import dotenv_values

        env.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    env.update(os.environ)
    return env


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _shown(path: tuple, value: str) -> str:
    """A value as messages name its origin: a secret key's value never appears."""
    return REDACTED if path and is_secret_key(str(path[-1])) else repr(value)


def _expand(node: Any, env: Mapping[str, str], path: tuple, problems: _Problems, label: str, origins: dict) -> Any:
    if isinstance(node, dict):
        return {k: _expand(v, env, (*path, k), problems, label, origins) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, env, (*path, i), problems, label, origins) for i, v in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value in (None, "") and default is not None:
            return default
        if value is None:
            problems.add(label, _format_path(path), f"environment variable {name} is not set (write ${{{name}:-default}})")
            return ""
        origins[path] = f"{label} (via ${{{name}}}={_shown(path, value)})"
        return value

    return _VAR.sub(substitute, node)


# The seed's environment variables and the key each one sets (they win over the file).
ENV_VARS: dict[str, str] = {
    "SENSORS_PER_CITY": "sensors_per_city",
    "MAX_CITIES": "max_cities",
    "READINGS_PER_SECOND": "simulation.readings_per_second",
    "ANOMALY_PROBABILITY": "anomalies.probability",
    "UPLOAD_INTERVAL": "uploader.interval_seconds",
    "COSMOS_ENDPOINT": "uploader.sinks.cosmos.endpoint",
    "COSMOS_KEY": "uploader.sinks.cosmos.key",
    "COSMOS_DATABASE": "uploader.sinks.cosmos.database_name",
    "COSMOS_CONTAINER": "uploader.sinks.cosmos.container_name",
    "COSMOS_VERIFY_TLS": "uploader.sinks.cosmos.verify_tls",
    "S3_BUCKET_NAME": "uploader.sinks.s3.bucket",
    "AWS_REGION": "uploader.sinks.s3.region",
    "AWS_PROFILE": "uploader.sinks.s3.profile",
}


def _set(data: dict[str, Any], dotted: tuple, value: Any) -> None:
    node = data
    for key in dotted[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[dotted[-1]] = value


def _get(data: dict[str, Any], dotted: tuple) -> Any:
    node: Any = data
    for key in dotted:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _apply_environment(raw: dict[str, Any], env: Mapping[str, str], origins: dict) -> None:
    for name, key in ENV_VARS.items():
        value = env.get(name)
        if value not in (None, ""):
            path = tuple(key.split("."))
            _set(raw, path, value)
            origins[path] = f"environment variable {name}={_shown(path, value)}"
    sinks = ("uploader", "sinks")
    # The seed's variables enable their sink unless the file says otherwise.
    implied = {"cosmos": env.get("COSMOS_ENDPOINT") and env.get("COSMOS_KEY") and "COSMOS_ENDPOINT and COSMOS_KEY",
               "s3": env.get("S3_BUCKET_NAME") and "S3_BUCKET_NAME"}
    for name, variables in implied.items():
        if variables and _get(raw, (*sinks, name, "enabled")) is None:
            _set(raw, (*sinks, name, "enabled"), True)
            origins[(*sinks, name, "enabled")] = f"environment ({variables} set)"
    # "Configured" means enabled unless the file says otherwise.
    cosmos = _get(raw, (*sinks, "cosmos"))
    if isinstance(cosmos, dict) and "enabled" not in cosmos and cosmos.get("endpoint") and cosmos.get("key"):
        cosmos["enabled"] = True
    s3 = _get(raw, (*sinks, "s3"))
    if isinstance(s3, dict) and "enabled" not in s3 and s3.get("bucket"):
        s3["enabled"] = True


# Override keys set by CLI flags, and the flag to name in messages.
FLAG_NAMES: dict[str, str] = {
    "select_cities": "--cities",
    "max_cities": "--max-cities",
    "sensors_per_city": "--sensors-per-city",
    "simulation.readings_per_second": "--rate",
    "anomalies.probability": "--anomaly-probability",
    "seed": "--seed",
}


def _select_cities(raw: dict[str, Any], flag_value: Any, problems: _Problems) -> list[str] | None:
    """Apply --cities: names from the config, else from the bundled table (added to the config)."""
    flag = FLAG_NAMES["select_cities"]
    names = flag_value if isinstance(flag_value, (list, tuple)) else str(flag_value).split(",")
    names = [n.strip() for n in names if n.strip()]
    if not names:
        problems.add(flag, "", "name at least one city")
        return None
    configured = raw.get("cities", [{"name": n} for n in DEFAULT_CITIES])
    if not isinstance(configured, list):
        return None
    raw["cities"] = configured
    by_key: dict[str, str] = {}
    for entry in configured:
        name = entry if isinstance(entry, str) else entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str):
            by_key.setdefault(name.casefold(), name)
            by_key.setdefault(city_clash_key(name), name)
    selected: list[str] = []
    first_given: dict[str, str] = {}
    for name in names:
        key = name.casefold()
        earlier = first_given.get(city_clash_key(name))
        if earlier is not None:
            same = "is" if earlier == name else f"and {earlier!r} are the same city,"
            problems.add(flag, "", f"{name!r} {same} listed twice; name each city once")
            continue
        first_given[city_clash_key(name)] = name
        if key in by_key or city_clash_key(name) in by_key:
            selected.append(safe_city_name(by_key.get(key) or by_key[city_clash_key(name)]))
            continue
        known = bundled_cities().get(key) or next(
            (c for c in bundled_cities().values() if city_clash_key(c["name"]) == city_clash_key(name)), None
        )
        if known is None:
            choices = [*{v for v in by_key.values()}, *(c["name"] for c in bundled_cities().values())]
            problems.add(flag, "", f"unknown city {name!r}{_did_you_mean(name, choices)} (configured or bundled cities only)")
            continue
        configured.append({"name": known["name"]})
        by_key[known["name"].casefold()] = known["name"]
        selected.append(safe_city_name(known["name"]))
    return selected
