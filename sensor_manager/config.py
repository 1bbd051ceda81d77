"""The project config: one YAML file, validated with pydantic, with environment and flag overrides.

Lookup: --config > $SENSOR_MANAGER_CONFIG > <project-dir>/sensor-manager.yaml > bundled default.
Precedence of values: flag > environment > file > default. A `.env` in the project dir is read with
dotenv semantics (the process environment wins). Every problem is collected and reported at once, one
line each: `<where>: <key.path>: <problem>`.
"""
from __future__ import annotations

import difflib
import functools
import math
import os
import re
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sensor_manager.errors import ConfigError
from sensor_manager.layout import REPO_ROOT
from sensor_manager.naming import city_name_problem, safe_city_name, city_clash_key
from sensor_manager.simulator.settings import (
    AnomalySettings,
    DeviceSettings,
    NormalParameters,
    SimulationSettings,
)
from sensor_manager.runtimes.compose_settings import DockerSettings
from uploader.settings import UploaderSettings

CONFIG_FILE_NAME = "sensor-manager.yaml"
CONFIG_ENV_VAR = "SENSOR_MANAGER_CONFIG"
REPO_CONFIG_DIR = REPO_ROOT / "config"
BUNDLED_CONFIG = REPO_CONFIG_DIR / CONFIG_FILE_NAME  # in a checkout; see bundled_file() for installs
DEFAULT_CITIES = ("Amsterdam", "Berlin", "London", "New York", "Tokyo")
MAX_CONFIG_BYTES = 1_000_000
MAX_YAML_ALIASES = 100
MAX_YAML_NODES = 100_000  # after aliases are expanded: a few aliases can still multiply into billions

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
    "S3_BUCKET_NAME": "uploader.sinks.s3.bucket",
    "AWS_REGION": "uploader.sinks.s3.region",
    "AWS_PROFILE": "uploader.sinks.s3.profile",
}

# Override keys set by CLI flags, and the flag to name in messages.
FLAG_NAMES: dict[str, str] = {
    "select_cities": "--cities",
    "max_cities": "--max-cities",
    "sensors_per_city": "--sensors-per-city",
    "simulation.readings_per_second": "--rate",
    "anomalies.probability": "--anomaly-probability",
    "seed": "--seed",
}

_SECRET_WORDS = ("password", "secret", "token", "access_key", "connection_string", "credential")
REDACTED = "***"


def bundled_file(name: str) -> Path:
    """A file shipped in config/: package data `sensor_manager.config_data` when installed, else the checkout's."""
    try:
        from importlib.resources import files

        candidate = files("sensor_manager.config_data") / name
        if isinstance(candidate, Path) and candidate.is_file():
            return candidate
    except ModuleNotFoundError:
        pass
    return REPO_CONFIG_DIR / name


@functools.cache
def bundled_cities() -> dict[str, dict[str, Any]]:
    """The bundled city table, keyed by case-folded display name, in table order."""
    data = yaml.safe_load(bundled_file("cities.yaml").read_text(encoding="utf-8"))
    return {entry["name"].casefold(): entry for entry in data["cities"]}


@functools.cache
def _available_zones() -> frozenset[str]:
    import zoneinfo

    return frozenset(zoneinfo.available_timezones())


def _is_zone(name: str) -> bool:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _did_you_mean(word: str, candidates: Any) -> str:
    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=True)


class CityConfig(StrictModel):
    """A city; a name from the bundled table needs nothing else (its centre and zone are filled in)."""

    name: str = Field(min_length=1, max_length=100)
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    timezone: str | None = None

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        problem = city_name_problem(name)
        if problem:
            raise ValueError(f"{name!r} {problem}; it would not make a safe directory name")
        return name

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str | None) -> str | None:
        if zone is not None and not _is_zone(zone):
            raise ValueError(f"unknown IANA time zone {zone!r}{_did_you_mean(zone, _available_zones())}")
        return zone

    @model_validator(mode="after")
    def _complete_from_table(self) -> "CityConfig":
        known = bundled_cities().get(self.name.casefold())
        if known is not None:
            self.name = known["name"]
            for key in ("latitude", "longitude", "timezone"):
                if getattr(self, key) is None:
                    setattr(self, key, known[key])
        elif self.latitude is None or self.longitude is None:
            raise ValueError(
                f"unknown city {self.name!r}: not in the bundled city table; give its latitude and longitude"
                f" (and timezone){_did_you_mean(self.name, [c['name'] for c in bundled_cities().values()])}"
            )
        if self.timezone is None:
            self.timezone = "UTC"
        return self


def _default_cities() -> list[CityConfig]:
    return [CityConfig(name=name) for name in DEFAULT_CITIES]


# What one machine hosts. Measured (benchmarks/simulator_density.py): 10,000 sensors at 1 reading/s take
# 2.1 GB RSS and 66.5 % of a core, so 100,000 need ~21 GB and ~7 cores (and as many containers on docker).
MAX_FLEET_SENSORS = 100_000


class Config(StrictModel):
    project: str = Field("sensor-demo", min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    seed: int = Field(20250101, ge=0, le=2**63 - 1)
    sensors_per_city: int = Field(5, ge=1, le=10_000)
    max_cities: int | None = Field(None, ge=1, le=10_000)
    runtime: Literal["auto", "docker", "local"] = "auto"
    simulation: SimulationSettings = SimulationSettings()
    normal_parameters: NormalParameters = NormalParameters()
    anomalies: AnomalySettings = AnomalySettings()
    devices: DeviceSettings = DeviceSettings()
    cities: list[CityConfig] = Field(default_factory=_default_cities, min_length=1, max_length=10_000)
    uploader: UploaderSettings = UploaderSettings()
    docker: DockerSettings = DockerSettings()
    # Where the config came from, for messages; not a key users set.
    source_path: str | None = Field(None, exclude=True)
    # Safe names chosen by --cities (None: every configured city); not a key users set.
    selected_cities: list[str] | None = Field(None, exclude=True)

    @field_validator("cities", mode="before")
    @classmethod
    def _names_alone(cls, cities: Any) -> Any:
        # `cities: [Berlin, Paris]` is short for `cities: [{name: Berlin}, {name: Paris}]`.
        if isinstance(cities, list):
            return [{"name": c} if isinstance(c, str) else c for c in cities]
        return cities

    @field_validator("cities")
    @classmethod
    def _distinct_directories(cls, cities: list[CityConfig]) -> list[CityConfig]:
        seen: dict[str, tuple[int, str]] = {}
        problems = []
        for index, city in enumerate(cities):
            key = city_clash_key(city.name)
            if key in seen:
                first, other = seen[key]
                if other.casefold() == city.name.casefold():
                    problems.append(f"cities[{index}]: {city.name!r} is listed twice (also cities[{first}])")
                else:
                    problems.append(
                        f"cities[{index}]: {city.name!r} and {other!r} (cities[{first}]) both become"
                        f" {safe_city_name(city.name)}; rename one"
                    )
            else:
                seen[key] = (index, city.name)
        if problems:
            raise ValueError("; ".join(problems))
        return cities

    @model_validator(mode="after")
    def _fill_to_max_cities(self) -> "Config":
        # As in the seed, max_cities larger than the list takes the next cities of the bundled table.
        if self.max_cities and self.max_cities > len(self.cities):
            have = {city_clash_key(c.name) for c in self.cities}
            for entry in bundled_cities().values():
                if len(self.cities) >= self.max_cities:
                    break
                if city_clash_key(entry["name"]) not in have:
                    self.cities.append(CityConfig(name=entry["name"]))
        return self

    def fleet_cities(self) -> list[CityConfig]:
        """The cities that run: the --cities selection (or all), then the first max_cities."""
        cities = self.cities
        if self.selected_cities is not None:
            wanted = {city_clash_key(name) for name in self.selected_cities}
            cities = [c for c in cities if city_clash_key(c.name) in wanted]
        return cities[: self.max_cities] if self.max_cities else list(cities)

    def redacted(self) -> dict[str, Any]:
        """The resolved config as plain data with every secret replaced by `***` (for display)."""
        return redact(self.model_dump(mode="json"))


def is_secret_key(name: str) -> bool:
    lowered = name.lower()
    return lowered == "key" or lowered.endswith(("_secret", "api_key", "account_key")) or any(
        word in lowered for word in _SECRET_WORDS
    )


def redact(value: Any) -> Any:
    """The one redaction helper: a copy of `value` with every secret-named entry's value replaced by `***`."""
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if is_secret_key(str(k)) and v not in (None, "") else redact(v)) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


# --- reading YAML ---------------------------------------------------------------------------------


class _Problems:
    """Collects `<where>: <key.path>: <problem>` lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, where: str, path: str, problem: str) -> None:
        self.lines.append(f"{where}: {path}: {problem}" if path else f"{where}: {problem}")


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


# --- ${VAR} expansion, environment and overrides --------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _format_path(loc: tuple[Any, ...] | list[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


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
        origins[path] = f"{label} (via ${{{name}}}={value!r})"
        return value

    return _VAR.sub(substitute, node)


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
            origins[path] = f"environment variable {name}={value!r}"
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


# --- validation messages ----------------------------------------------------------------------------


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The pydantic model that owns the last key of `loc` (for did-you-mean and bounds)."""
    model: Any = Config
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        annotation = model.model_fields[part].annotation
        model = _inner_model(annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _field_bounds(loc: tuple) -> str | None:
    owner = _model_at(loc[:-1])
    if owner is None or loc[-1] not in owner.model_fields:
        return None
    lower = upper = None
    for meta in owner.model_fields[loc[-1]].metadata:
        for attr, text in (("ge", ">="), ("gt", ">")):
            if getattr(meta, attr, None) is not None:
                lower = (text, getattr(meta, attr))
        for attr, text in (("le", "<="), ("lt", "<")):
            if getattr(meta, attr, None) is not None:
                upper = (text, getattr(meta, attr))
    if lower and upper and lower[0] == ">=" and upper[0] == "<=":
        return f"must be between {lower[1]:,} and {upper[1]:,}".replace(",", "")
    parts = [f"{op} {value}" for op, value in (lower, upper) if op]
    return f"must be {' and '.join(parts)}" if parts else None


def _message(error: dict[str, Any]) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    got = error.get("input")
    if kind == "extra_forbidden":
        owner = _model_at(loc[:-1])
        names = [n for n in (owner.model_fields if owner else ()) if n not in ("source_path", "selected_cities")]
        return f"unknown key {loc[-1]!r}{_did_you_mean(str(loc[-1]), names)}"
    if kind in {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}:
        bounds = _field_bounds(loc) or error["msg"]
        return f"{bounds} (got {got!r})"
    if kind == "finite_number":
        return "NaN and infinity are not allowed"
    if kind == "value_error":
        return str(error["ctx"]["error"]) if "ctx" in error else error["msg"]
    shown = repr(got) if not isinstance(got, (dict, list)) else type(got).__name__
    return f"{error['msg']} (got {shown[:80]})"


def _describe(error: dict[str, Any], origins: dict, label: str) -> tuple[str, str, str]:
    """(where, key path, problem) of one pydantic error, naming the flag or variable that set the value."""
    loc = tuple(error["loc"])
    # Literal-keyed dicts report the bad key as a trailing '[key]' element.
    if loc and loc[-1] == "[key]":
        loc = loc[:-1]
    for length in range(len(loc), 0, -1):
        origin = origins.get(loc[:length])
        if origin:
            if origin.startswith("--"):
                return origin, "", _message(error)
            return origin, _format_path(loc), _message(error)
    return label, _format_path(loc), _message(error)


def _check_fleet_size(config: Config, origins: dict, label: str, problems: _Problems) -> None:
    """Every configured city is planned (codes are fleet-wide), so the bound is on all of them."""
    sensors = config.sensors_per_city * len(config.cities)
    if sensors <= MAX_FLEET_SENSORS:
        return
    where = origins.get(("sensors_per_city",), label)
    problems.add(
        where, "" if where.startswith("--") else "sensors_per_city",
        f"{config.sensors_per_city:,} sensors per city x {len(config.cities):,} cities = {sensors:,} sensors;"
        f" one machine runs at most {MAX_FLEET_SENSORS:,} (each hosted sensor takes ~210 KB of memory and four"
        " open files): lower sensors_per_city or configure fewer cities",
    )


# --- the entry point ---------------------------------------------------------------------------------


def environment(project_dir: str | os.PathLike[str] | None) -> dict[str, str]:
    """The environment config sees: `<project-dir>/.env` under the process environment (which wins)."""
    env: dict[str, str] = {}
    dotenv_path = Path(project_dir or REPO_ROOT) / ".env"
    if dotenv_path.is_file():
        from dotenv import dotenv_values

        env.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    env.update(os.environ)
    return env


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


def load_config(
    config_path: str | os.PathLike[str] | None = None,
    project_dir: str | os.PathLike[str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Config:
    """Find, read, expand and validate the config; raise ConfigError listing every problem.

    `overrides` are dotted keys from CLI flags (e.g. {"sensors_per_city": 3}); they win over everything.
    The key `select_cities` ("A,B" or a list) picks a subset of the configured or bundled cities.
    """
    env = environment(project_dir)
    path, _how = config_location(config_path, project_dir, env)
    label = str(path)
    problems = _Problems()
    raw = _read_yaml(path, label, problems)
    if raw is None:
        raise ConfigError(problems.lines)
    for internal in ("source_path", "selected_cities"):
        if internal in raw:
            problems.add(label, internal, f"unknown key {internal!r}")
            raw.pop(internal)
    origins: dict[tuple, str] = {}
    raw = _expand(raw, env, (), problems, label, origins)
    _apply_environment(raw, env, origins)
    overrides = dict(overrides or {})
    selection = None
    if "select_cities" in overrides:
        selection = _select_cities(raw, overrides.pop("select_cities"), problems)
    for dotted, value in overrides.items():
        key = tuple(dotted.split("."))
        flag = FLAG_NAMES.get(dotted, f"override {dotted}")
        if isinstance(value, float) and not math.isfinite(value):
            problems.add(flag, "", "NaN and infinity are not allowed")
            continue
        _set(raw, key, value)
        origins[key] = flag
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            problems.add(*_describe(error, origins, label))
        raise ConfigError(problems.lines) from None
    _check_fleet_size(config, origins, label, problems)
    if problems.lines:
        raise ConfigError(problems.lines)
    config.source_path = label
    config.selected_cities = selection
    return config
