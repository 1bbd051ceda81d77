"""A Bacalhau v2 job spec as strict pydantic models: what `bacalhau validate` checks offline.

The rules mirror the engine's own submission checks (github.com/bacalhau-project/bacalhau,
pkg/models: job.go `Job.Validate`, task.go `Task.ValidateSubmission`/`validateInputSources`/
`validateResultPaths`, selector.go `LabelSelectorRequirement.Validate`, env_var.go `ValidateEnvVars`,
input_source.go `InputSource.Validate`, network.go `NetworkConfig`). Two rules are stricter than
those files: Count > 1 is refused for daemon and ops jobs (they run once per matching node, a count
means nothing), and Domains only with an HTTP network (the only type that filters by domain).
Keys are the engine's (PascalCase); an unknown key is an error with a did-you-mean.
"""
from __future__ import annotations

import difflib
import re
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from fleetcore.models import StrictModel, model_at

JOB_TYPES = ("batch", "ops", "daemon", "service")
# k8s selection operators, as selector.go accepts them.
SET_OPERATORS = ("in", "notin")
EXISTENCE_OPERATORS = ("exists", "!")
SINGLE_VALUE_OPERATORS = ("=", "==", "!=", "gt", "lt")
Operator = Literal["in", "notin", "exists", "!", "=", "==", "!=", "gt", "lt"]
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
RESERVED_ENV_PREFIX = "BACALHAU_"  # env_var.go: EnvVarPrefix
NETWORK_TYPES = ("None", "Full", "HTTP")  # network.go; ParseNetwork compares case-insensitively


def _not_blank(value: str, what: str) -> str:
    if not value.strip():
        raise ValueError(f"{what} must not be blank")
    if "\0" in value:
        raise ValueError(f"{what} must not contain a null character")
    return value


class SpecConfig(StrictModel):
    """An engine, publisher or storage source: a type and its parameters."""

    Type: str
    Params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("Type")
    @classmethod
    def _type(cls, value: str) -> str:
        return _not_blank(value, "Type")


class Constraint(StrictModel):
    Key: str
    Operator: Operator
    Values: list[str] = Field(default_factory=list)

    @field_validator("Key")
    @classmethod
    def _key(cls, value: str) -> str:
        return _not_blank(value, "Key")

    @model_validator(mode="after")
    def _values(self) -> "Constraint":
        count = len(self.Values)
        if self.Operator in SET_OPERATORS and count == 0:
            raise ValueError(f"operator {self.Operator!r} needs at least one value in Values")
        if self.Operator in EXISTENCE_OPERATORS and count:
            raise ValueError(f"operator {self.Operator!r} takes no Values (got {count})")
        if self.Operator in SINGLE_VALUE_OPERATORS and count != 1:
            raise ValueError(f"operator {self.Operator!r} needs exactly one value in Values (got {count})")
        return self


class InputSource(StrictModel):
    Source: SpecConfig
    Target: str
    Alias: str | None = None

    @field_validator("Target")
    @classmethod
    def _target(cls, value: str) -> str:
        return _not_blank(value, "Target")


class ResultPath(StrictModel):
    Name: str
    Path: str

    @field_validator("Name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _not_blank(value, "Name")

    @field_validator("Path")
    @classmethod
    def _path(cls, value: str) -> str:
        _not_blank(value, "Path")
        if not value.startswith("/"):
            raise ValueError(f"Path {value!r} must be absolute")
        return value


class NetworkConfig(StrictModel):
    Type: str = "None"
    Domains: list[str] = Field(default_factory=list)

    @field_validator("Type")
    @classmethod
    def _type(cls, value: str) -> str:
        for known in NETWORK_TYPES:
            if value.strip().lower() == known.lower():
                return known
        raise ValueError(f"network Type {value!r} is not one of {', '.join(NETWORK_TYPES)}")

    @model_validator(mode="after")
    def _domains(self) -> "NetworkConfig":
        if self.Domains and self.Type != "HTTP":
            raise ValueError(f"Domains are allowed only with network Type HTTP (Type is {self.Type})")
        return self


class ResourcesConfig(StrictModel):
    CPU: str | None = None
    Memory: str | None = None
    Disk: str | None = None
    GPU: str | None = None


class TimeoutConfig(StrictModel):
    ExecutionTimeout: int | None = Field(None, ge=0)
    QueueTimeout: int | None = Field(None, ge=0)
    TotalTimeout: int | None = Field(None, ge=0)


class Task(StrictModel):
    Name: str
    Engine: SpecConfig
    Publisher: SpecConfig | None = None
    Env: dict[str, str] = Field(default_factory=dict)
    Meta: dict[str, str] = Field(default_factory=dict)
    InputSources: list[InputSource] = Field(default_factory=list)
    ResultPaths: list[ResultPath] = Field(default_factory=list)
    Resources: ResourcesConfig | None = None
    Network: NetworkConfig | None = None
    Timeouts: TimeoutConfig | None = None

    @field_validator("Name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _not_blank(value, "task Name")

    @field_validator("Env")
    @classmethod
    def _env(cls, env: dict[str, str]) -> dict[str, str]:
        for name, value in env.items():
            if not ENV_NAME.match(name):
                raise ValueError(f"env name {name!r} must be uppercase letters, digits and '_', starting with a letter")
            if name.startswith(RESERVED_ENV_PREFIX):
                raise ValueError(f"env name {name!r} must not start with {RESERVED_ENV_PREFIX} (reserved by the engine)")
            if value == "":
                raise ValueError(f"env {name!r} must not have an empty value")
        return env

    @field_validator("InputSources")
    @classmethod
    def _unique_targets(cls, sources: list[InputSource]) -> list[InputSource]:
        _refuse_repeats([s.Target for s in sources], "input source Target")
        _refuse_repeats([s.Alias for s in sources if s.Alias], "input source Alias")
        return sources

    @field_validator("ResultPaths")
    @classmethod
    def _unique_results(cls, results: list[ResultPath]) -> list[ResultPath]:
        _refuse_repeats([r.Name for r in results], "result path Name")
        _refuse_repeats([r.Path for r in results], "result path Path")
        return results


def _refuse_repeats(values: list[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} {value!r} appears more than once")
        seen.add(value)


class Job(StrictModel):
    Name: str
    Type: str
    Namespace: str | None = None
    Priority: int | None = None
    Count: int = 0
    Constraints: list[Constraint] = Field(default_factory=list)
    Labels: dict[str, str] = Field(default_factory=dict)
    Meta: dict[str, str] = Field(default_factory=dict)
    Tasks: list[Task]

    @field_validator("Name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _not_blank(value, "job Name")

    @field_validator("Type")
    @classmethod
    def _type(cls, value: str) -> str:
        if value not in JOB_TYPES:
            raise ValueError(f"job Type {value!r} is not one of {', '.join(JOB_TYPES)}")
        return value

    @field_validator("Count")
    @classmethod
    def _count(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"Count must be >= 0 (got {value})")
        return value

    @field_validator("Tasks")
    @classmethod
    def _tasks(cls, tasks: list[Task]) -> list[Task]:
        if not tasks:
            raise ValueError("a job needs at least one task")
        return tasks

    @model_validator(mode="after")
    def _count_for_type(self) -> "Job":
        if self.Type in ("daemon", "ops") and self.Count > 1:
            raise ValueError(f"Count must be 0 or 1 for a {self.Type} job (it runs once on every matching node); got {self.Count}")
        return self


# ---- messages ------------------------------------------------------------------------------------

def _path(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _message(error: ErrorDetails) -> str:
    loc = tuple(error["loc"])
    where = _path(loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        owner = model_at(Job, loc[:-1])
        known = list(owner.model_fields) if owner else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        close = close or [k for k in known if k.lower() == str(loc[-1]).lower()]
        hint = f"; did you mean {close[0]!r}?" if close else (f"; known keys: {', '.join(known)}" if known else "")
        return f"{where}: unknown key{hint}"
    if error["type"] == "missing":
        return f"{where}: required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "literal_error" and loc and loc[-1] == "Operator":
        message = f"operator {error['input']!r} is not one of {', '.join(SET_OPERATORS + EXISTENCE_OPERATORS + SINGLE_VALUE_OPERATORS)}"
    return f"{where}: {message}"


def job_problems(document: Any) -> list[str]:
    """Every problem of one parsed job spec, one line each (empty: valid)."""
    if not isinstance(document, dict):
        return [f"(top level): a job spec is a mapping, not {type(document).__name__}"]
    try:
        Job.model_validate(document)
    except ValidationError as exc:
        return [_message(error) for error in exc.errors()]
    return []


def spec_problems(text: str) -> list[str]:
    """Every problem of one job spec file's text: YAML first, then the rules above."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(file)"
        return [f"{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})"]
    return job_problems(document)
