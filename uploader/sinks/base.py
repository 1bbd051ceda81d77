"""The sink contract: `check()`, `write(batch)` → Delivered | Retry | Rejected, `resume_from(app_id)`.

A batch holds one part per source (its app id and id range); the outcome covers the whole batch: a
sink delivers all its parts or none. The pipeline moves a sink's checkpoint for each source only on
Delivered (to `Delivered.positions[app_id]`, which may be below the part's end when the sink already
held some of it, and below the part's start when the sink lost rows: the pipeline then ships again from
there). Retry goes through the backoff policy; Rejected sends the batch's rows to the
dead-letter store with the reason and moves on (the pipeline first retries a refused multi-source batch
one source at a time, so only the offending source's rows are dead-lettered). A sink classifies its
backend's failures itself: callers never inspect vendor exception types.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Protocol, Union

from pydantic import Field

from fleetcore.models import StrictModel

if TYPE_CHECKING:
    from uploader.batch import Batch


@dataclass(frozen=True)
class Delivered:
    positions: dict[str, int]  # per part's app id: the sink now durably holds every row of that source up to this id
    rows: int = 0  # rows written by this call (0 when the sink already held them)


@dataclass(frozen=True)
class Retry:
    reason: str
    permanent: bool = False  # nothing will change until the config does (e.g. a refused key): the sink stops


@dataclass(frozen=True)
class Rejected:
    reason: str


Outcome = Union[Delivered, Retry, Rejected]


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str


class RetrySettings(StrictModel):
    initial_seconds: float = Field(1.0, gt=0, le=60)
    max_seconds: float = Field(60.0, gt=0, le=3600)
    once_max_attempts: int = Field(5, ge=1, le=100, description="attempts per batch in --once mode")


StageName = Literal["raw", "schematized", "sanitized", "aggregated"]
READING_STAGES = frozenset({"raw", "schematized", "sanitized"})  # one row per reading, into sensor_readings


class SinkSettings(StrictModel):
    """Settings every sink shares; each sink's own model adds to these."""

    enabled: bool = False
    stage: StageName | None = Field(None, description="the stage whose output this sink receives; default uploader.stage")
    batch_size: int = Field(250_000, ge=1, le=5_000_000)
    retry: RetrySettings = RetrySettings()


class Sink(Protocol):
    name: str
    stage: str

    def check(self) -> CheckResult:
        """Do what a write does without leaving anything a user would notice."""

    def write(self, batch: Batch) -> Outcome:
        """Deliver every part of the batch atomically (idempotently: a replay of a delivered range writes nothing).

        Raises the source's exception (`batch.source_error`) when a source failed while it was read."""

    def resume_from(self, app_id: str) -> int | None:
        """The position the sink itself durably holds for this source, or None if it keeps none."""

    def count_project(self, project: str, fleet_epoch: int | None = None) -> int:
        """Rows of this project (of one fleet epoch, if given) the sink holds (for `clean --dry-run`)."""

    def delete_project(self, project: str, fleet_epoch: int | None = None) -> int:
        """Remove this project's rows (of one fleet epoch, if given) and nothing else; returns how many."""

    def mark_shipped(self, positions: dict[str, int]) -> None:
        """Record these positions as held (after a clean: the history is not shipped again)."""


@dataclass(frozen=True)
class SinkContext:
    """What a sink's factory may use besides its own settings."""

    lake: Path  # <project>/lake: the default local Delta location
    project_dir: Path | None  # None: a standalone uploader
    stage: str = "raw"
    window: str = "1m"  # the aggregated stage's window: its table is sensor_readings_<window>
    development: bool = False  # `--development`: a demo run (the Cosmos sink stamps documents with the current time)

    def local(self, configured: str | None, default: Path) -> Path:
        """A configured path (relative to the project directory), else the default."""
        if not configured:
            return default
        path = Path(configured).expanduser()
        return path if path.is_absolute() or self.project_dir is None else self.project_dir / path


def _no_secrets(settings: Any, environ: Mapping[str, str]) -> dict[str, str]:
    return {}


def _no_problems(settings: Any, environ: Mapping[str, str]) -> list[str]:
    return []


@dataclass(frozen=True)
class SinkSpec:
    """Everything the rest of the code knows about one sink; its module declares it, the registry lists it."""

    name: str
    settings: type[SinkSettings]
    build: Callable[[Any, SinkContext], Sink]  # (its settings, context) -> a ready sink; raises ConfigError on bad settings
    location: Callable[[Any, SinkContext], str]  # where it writes, for messages (`lake/sensor_readings`, `s3://b/p`)
    # The part of the project directory the sink owns: `reset` deletes it whole. None: rows are deleted through the sink.
    project_path: Callable[[Any, SinkContext], Path | None] = lambda settings, context: None
    needs_network: bool = False  # a container running it gets the host network
    container_env: tuple[str, ...] = ()  # standard variables passed through (by name, never value) to its containers
    secrets: Callable[[Any, Mapping[str, str]], dict[str, str]] = _no_secrets  # secret file name -> content
    secret_env: Mapping[str, str] = field(default_factory=dict)  # secret file name -> the variable naming its path in a container
    preflight: Callable[[Any, Mapping[str, str]], list[str]] = _no_problems  # what `start` must see, without the network
    cleans: str = ""  # what `clean` removes from it, for docs and messages
    stages: frozenset[str] = READING_STAGES  # the stages whose output it can hold (aggregated: another table shape)
