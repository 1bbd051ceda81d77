"""What `query` asks of any place readings live: the `ReadingSource` protocol and the shapes it answers in.

A source answers five questions (newest readings, latest per sensor, count, per-sensor list, `--all`
report) for the same `Filters`; `observe/query.py` picks the one source for `--source` once. Every
filter reaches SQL as a bound parameter, never as text, so a hostile sensor id matches nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from fleetcore.errors import UsageError
from fleetcore.naming import city_service_slug, safe_city_name

SCHEMA_VERSION = 1

# The columns a reading query returns from any source, so their results line up.
READING_COLUMNS = (
    "timestamp", "sensor_id", "location", "temperature", "humidity", "pressure", "vibration", "voltage",
    "status_code", "anomaly_flag", "anomaly_type", "seq",
)
LIST_COLUMNS = ("sensor_id", "city", "rows", "first_timestamp", "last_timestamp", "path")
METRICS = ("temperature", "humidity", "pressure", "vibration", "voltage")
MAX_LIMIT = 1_000_000


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "columns": self.columns, "rows": self.rows}


@dataclass(frozen=True)
class Filters:
    sensor_id: str | None = None
    city: str | None = None
    since: datetime | None = None

    @property
    def since_text(self) -> str | None:
        """`since` in the edge DBs' timestamp form (UTC, milliseconds, +00:00), which sorts as text."""
        return self.since.isoformat(timespec="milliseconds") if self.since else None


@dataclass
class DatabaseReport:
    """One entry of `query --all`: the seed's per-DB report."""

    path: str
    sensor_id: str | None
    city: str | None
    size_bytes: int
    wal_bytes: int
    schema: list[str]
    rows: int
    sample: list[dict[str, Any]]
    sensor_ids: list[str]
    locations: list[str]
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "extra"} | self.extra


class ReadingSource(Protocol):
    """One place readings live (edge DBs, the lake, the archive, a bucket); every answer honours `filters`."""

    @property
    def name(self) -> str:
        """What `--source` calls it."""
        ...

    def readings(self, filters: Filters, limit: int, columns: tuple[str, ...] = READING_COLUMNS) -> QueryResult:
        """The newest `limit` matching readings, oldest first."""
        ...

    def latest(self, filters: Filters) -> QueryResult:
        """The newest matching reading of each sensor, by sensor id."""
        ...

    def count(self, filters: Filters) -> QueryResult:
        """One row: `count`."""
        ...

    def list_sensors(self, filters: Filters) -> QueryResult:
        """One row per sensor: rows, first and last timestamp."""
        ...

    def report(self, filters: Filters) -> list[DatabaseReport]:
        """`--all`: schema, row count, sample rows, distinct ids and locations."""
        ...


def check_limit(limit: int) -> int:
    if limit < 1:
        raise UsageError(f"--limit {limit}: must be at least 1")
    if limit > MAX_LIMIT:
        raise UsageError(f"--limit {limit}: at most {MAX_LIMIT} (rows are held in memory)")
    return limit


def spells_city(city: str, safe_city: str, name: str) -> bool:
    """Whether `name` spells the city: its display name, safe name or slug (any case, accents optional)."""
    key = name.strip().casefold()
    return key in (city.casefold(), safe_city.casefold(), city_service_slug(safe_city)) or (
        safe_city_name(name).casefold() == safe_city.casefold()
    )


def newest_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (str(r["timestamp"]), r["sensor_id"] or "", r["seq"] or 0), reverse=True)
