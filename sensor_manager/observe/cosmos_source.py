"""`query --source cosmos`: the Cosmos sink's container (`uploader.sinks.cosmos`), read with Cosmos SQL.

Answers have the shape of `--source lake`: the same columns, timestamps in the edge DBs' form (UTC,
milliseconds, +00:00), the sink's extra document fields (`id`, `_ts`, …) left out. Every filter is a
query parameter, never text. `--count` is `SELECT VALUE COUNT(1)`, newest readings `SELECT TOP n … ORDER
BY c.timestamp DESC` (Cosmos SQL has no LIMIT without OFFSET). `--latest` and `--list` group on our side,
in one streamed pass over the matching documents: GROUP BY, DISTINCT and ORDER BY on two fields need
what the local test server lacks (and a composite index on a real account); that pass costs request
units in proportion to the documents it reads.

`--sql` is read-only by construction: the statement must begin with SELECT (checked here, exit 2
otherwise) and goes only to the query API (`query_items`, the Cosmos query endpoint), whose language has
no statement that writes; nothing in this module calls a write, stored procedure or trigger API.
"""
from __future__ import annotations

import json
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from fleetcore.errors import ConfigError, SensorManagerError, UsageError
from fleetcore.naming import safe_city_name
from sensor_manager.observe.readings import (
    LIST_COLUMNS,
    READING_COLUMNS,
    DatabaseReport,
    Filters,
    QueryResult,
    newest_first,
    spells_city,
)
from sensor_manager.plan import FleetPlan

if TYPE_CHECKING:
    from azure.cosmos import ContainerProxy

    from uploader.sinks.cosmos import CosmosSinkSettings

# A statement may open with comments; what follows them must be SELECT.
_LEADING_COMMENTS = re.compile(r"^(\s|--[^\n]*(\n|$))*")
_PARAMETER_NAME = re.compile(r"^@?[A-Za-z_][A-Za-z0-9_]*$")
SAMPLE_ROWS = 5
DISTINCT_SHOWN = 100


class CosmosQueryTimeoutError(SensorManagerError):
    """A `--sql` query outlived its `--timeout`."""


def read_only_statement(statement: str) -> str:
    """The statement, if it is a SELECT (after leading `--` comments); else a UsageError (exit 2)."""
    body = _LEADING_COMMENTS.sub("", statement)
    if not re.match(r"(?i)select\b", body):
        first = body.split(None, 1)[0] if body.strip() else "an empty statement"
        raise UsageError(f"--sql: only SELECT queries are sent to Cosmos DB; got {first!r}")
    return statement


def parse_parameters(pairs: Iterable[str]) -> list[dict[str, Any]]:
    """`--param NAME=VALUE` as Cosmos query parameters: VALUE as JSON when it parses (numbers, true, "text"), else text."""
    parameters: list[dict[str, Any]] = []
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not _PARAMETER_NAME.match(name.strip()):
            raise UsageError(f"--param {pair!r}: write NAME=VALUE, e.g. --param city=Amsterdam (used as @city)")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        parameters.append({"name": "@" + name.strip().lstrip("@"), "value": value})
    names = [p["name"] for p in parameters]
    if len(set(names)) != len(names):
        raise UsageError(f"--param: {next(n for n in names if names.count(n) > 1)} is given twice")
    return parameters


def shown_timestamp(value: Any) -> Any:
    """A document's ISO timestamp (`…Z`) in the edge DBs' and the lake's form: UTC, milliseconds, +00:00."""
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def document_timestamp(moment: datetime) -> str:
    """`--since` in the documents' form (ISO-8601 UTC, microseconds, `Z`), which sorts as text."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class CosmosSource:
    """The container the Cosmos sink writes; `open_container` is called once, on the first question."""

    settings: CosmosSinkSettings
    plan: FleetPlan | None
    open_container: Callable[[CosmosSinkSettings], ContainerProxy] | None = None
    name: str = "cosmos"
    _container: ContainerProxy | None = field(default=None, init=False, repr=False)

    @property
    def where(self) -> str:
        return f"cosmos {self.settings.database_name}/{self.settings.container_name}"

    def container(self) -> ContainerProxy:
        if self._container is None:
            opener = self.open_container or _open_container
            with cosmos_errors(self.settings, self.where):
                self._container = opener(self.settings)
        return self._container

    # --- the ReadingSource questions ---------------------------------------------------------------

    def readings(self, filters: Filters, limit: int, columns: tuple[str, ...] = READING_COLUMNS) -> QueryResult:
        """`TOP n … ORDER BY c.timestamp DESC`, then every reading at the oldest timestamp it reached: the server
        breaks ties at that boundary its own way, the lake by sensor id and seq, and so must this."""
        wanted = tuple(dict.fromkeys((*columns, "timestamp", "sensor_id", "seq")))
        where, params = self._where(filters)
        sql = f"SELECT TOP {int(limit)} {_projection(wanted)} FROM c{where} ORDER BY c.timestamp DESC"
        docs = list(self._query(sql, params))
        if len(docs) == limit:
            boundary = min(str(doc.get("timestamp")) for doc in docs)
            docs = [doc for doc in docs if str(doc.get("timestamp")) != boundary]
            docs += self._query(f"SELECT {_projection(wanted)} FROM c{where} AND c.timestamp = @boundary",
                                [*params, {"name": "@boundary", "value": boundary}])
        rows = newest_first([_row(doc, wanted) for doc in docs])[:limit]
        return QueryResult(list(columns), [{c: row[c] for c in columns} for row in reversed(rows)])

    def latest(self, filters: Filters) -> QueryResult:
        where, params = self._where(filters)
        newest: dict[str, dict[str, Any]] = {}
        for doc in self._query(f"SELECT {_projection(READING_COLUMNS)} FROM c{where}", params):
            row = _row(doc, READING_COLUMNS)
            held = newest.get(row["sensor_id"])
            if held is None or _recency(row) > _recency(held):
                newest[row["sensor_id"]] = row
        return QueryResult(list(READING_COLUMNS), [newest[s] for s in sorted(newest, key=lambda s: s or "")])

    def count(self, filters: Filters) -> QueryResult:
        where, params = self._where(filters)
        counted = list(self._query(f"SELECT VALUE COUNT(1) FROM c{where}", params))
        return QueryResult(["count"], [{"count": int(counted[0]) if counted else 0}])

    def list_sensors(self, filters: Filters) -> QueryResult:
        where, params = self._where(filters)
        sensors: dict[str, dict[str, Any]] = {}
        for doc in self._query(f"SELECT c.sensor_id, c.location, c.timestamp FROM c{where}", params):
            stamp = shown_timestamp(doc.get("timestamp"))
            entry = sensors.setdefault(doc.get("sensor_id"), {  # `city` as the lake lists it: the reading's location
                "sensor_id": doc.get("sensor_id"), "city": doc.get("location"), "rows": 0,
                "first_timestamp": stamp, "last_timestamp": stamp, "path": self.where})
            entry["rows"] += 1
            entry["first_timestamp"] = min(entry["first_timestamp"], stamp, key=str)
            entry["last_timestamp"] = max(entry["last_timestamp"], stamp, key=str)
        return QueryResult(list(LIST_COLUMNS), [sensors[s] for s in sorted(sensors, key=lambda s: s or "")])

    def report(self, filters: Filters, sample_rows: int = SAMPLE_ROWS) -> list[DatabaseReport]:
        where, params = self._where(filters)
        count = self.count(filters).rows[0]["count"]
        sample = [_document(doc) for doc in self._query(f"SELECT TOP {int(sample_rows)} * FROM c{where} ORDER BY c.timestamp", params)]
        ids: set[str] = set()
        locations: set[str] = set()
        for doc in self._query(f"SELECT c.sensor_id, c.location FROM c{where}", params):
            ids.add(doc.get("sensor_id"))
            locations.add(doc.get("location"))
        container = self.container()
        with cosmos_errors(self.settings, self.where):
            properties = container.read()
        schema = sorted({key for doc in sample for key in doc})
        return [DatabaseReport(
            path=self.where, sensor_id=None, city=filters.city, size_bytes=0, wal_bytes=0, schema=schema, rows=count,
            sample=sample, sensor_ids=sorted(i for i in ids if i is not None)[:DISTINCT_SHOWN],
            locations=sorted(loc for loc in locations if loc is not None)[:DISTINCT_SHOWN],
            extra={"partition_key": (properties.get("partitionKey") or {}).get("paths")},
        )]

    def sql(self, statement: str, timeout: float, parameters: list[dict[str, Any]] | None = None) -> QueryResult:
        """A read-only Cosmos SQL query (see the module docstring); stopped after `timeout` seconds (exit 1)."""
        if not timeout > 0:
            raise UsageError(f"--timeout {timeout}: must be a positive number of seconds")
        statement = read_only_statement(statement)
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def fetch() -> None:  # on a worker thread: the SDK's request timeout covers one page, not the whole query
            try:
                outcome["rows"] = [_document(doc) if isinstance(doc, dict) else {"value": doc}
                                   for doc in self._query(statement, parameters or [], refused_sql_is_usage=True)]
            except BaseException as exc:  # handed to the caller below
                outcome["error"] = exc
            finally:
                done.set()

        threading.Thread(target=fetch, name="cosmos-query", daemon=True).start()
        if not done.wait(timeout):
            raise CosmosQueryTimeoutError(f"--sql: the query ran longer than {timeout:g} s and was stopped; narrow it or raise --timeout")
        if "error" in outcome:
            raise outcome["error"]
        rows = outcome["rows"]
        columns = list(dict.fromkeys(key for row in rows for key in row))
        return QueryResult(columns, [{c: row.get(c) for c in columns} for row in rows])

    # --- helpers ------------------------------------------------------------------------------------

    def _cities(self, city: str) -> list[str]:
        """The `city` values for what the user typed: the display name the sink writes, and the safe name."""
        for sensor in self.plan.sensors if self.plan else ():
            if spells_city(sensor.city, sensor.safe_city, city):
                return [sensor.city, sensor.safe_city]
        return [city.strip(), safe_city_name(city)]

    def _where(self, filters: Filters) -> tuple[str, list[dict[str, Any]]]:
        clauses = ["IS_DEFINED(c.sensor_id)"]  # the sink's documents, not others sharing the container
        params: list[dict[str, Any]] = []
        if filters.sensor_id is not None:
            clauses.append("c.sensor_id = @sensor_id")
            params.append({"name": "@sensor_id", "value": filters.sensor_id})
        if filters.city is not None:
            display, safe = self._cities(filters.city)
            clauses.append("c.city IN (@city, @safe_city)")
            params += [{"name": "@city", "value": display}, {"name": "@safe_city", "value": safe}]
        if filters.since is not None:
            clauses.append("c.timestamp >= @since")
            params.append({"name": "@since", "value": document_timestamp(filters.since)})
        return " WHERE " + " AND ".join(clauses), params

    def _query(self, sql: str, params: list[dict[str, Any]], refused_sql_is_usage: bool = False) -> Iterator[Any]:
        container = self.container()
        with cosmos_errors(self.settings, self.where, refused_sql_is_usage):
            yield from container.query_items(sql, parameters=params, enable_cross_partition_query=True)


def _projection(columns: Iterable[str]) -> str:
    return ", ".join(f"c.{name}" for name in columns)


def _row(doc: dict[str, Any], columns: Iterable[str]) -> dict[str, Any]:
    """A document as a reading row: every column present (absent fields are None), the timestamp as the lake shows it."""
    return {c: shown_timestamp(doc.get(c)) if c == "timestamp" else doc.get(c) for c in columns}


def _recency(row: dict[str, Any]) -> tuple[str, int]:
    """Newest first as the lake orders it: timestamp, then seq."""
    return str(row["timestamp"]), row["seq"] if isinstance(row["seq"], int) else -1


def _document(doc: dict[str, Any]) -> dict[str, Any]:
    """A whole document without the server's bookkeeping (`_rid`, `_self`, `_etag`, `_attachments`; `_ts` stays)."""
    return {k: shown_timestamp(v) if k == "timestamp" else v for k, v in doc.items()
            if k not in ("_rid", "_self", "_etag", "_attachments")}


def _open_container(settings: CosmosSinkSettings) -> ContainerProxy:
    from uploader.sinks.cosmos_client import sync_container

    return sync_container(settings, create=False)


@contextmanager
def cosmos_errors(settings: CosmosSinkSettings, where: str, refused_sql_is_usage: bool = False) -> Iterator[None]:
    """The SDK's failures as one line naming the endpoint or container and what to do (exit 1; 2 for bad input)."""
    from azure.core.exceptions import AzureError, ServiceRequestError
    from azure.cosmos.exceptions import CosmosHttpResponseError

    try:
        yield
    except CosmosHttpResponseError as error:
        raise _http_error(error, settings, where, refused_sql_is_usage) from None
    except ServiceRequestError as error:
        raise SensorManagerError(f"{settings.endpoint}: cannot reach Cosmos DB ({_first_line(error)}); "
                                 "run `diagnostics` for the DNS, port and TLS checks") from None
    except AzureError as error:
        raise SensorManagerError(f"{where}: {_first_line(error)}") from None


def _http_error(error, settings: CosmosSinkSettings, where: str, refused_sql_is_usage: bool) -> SensorManagerError:
    status = error.status_code
    if status in (401, 403):
        return ConfigError(f"{settings.endpoint}: the key was refused ({status}): set COSMOS_KEY "
                           "(uploader.sinks.cosmos.key) to the account's primary or secondary key")
    if status == 404:
        return SensorManagerError(f"{where}: no such database or container (404); nothing has been "
                                  "uploaded to the cosmos sink yet, or the names differ from the sink's")
    if status == 400 and refused_sql_is_usage:
        return UsageError(f"SQL refused: {server_message(error)}")
    return SensorManagerError(f"{where}: Cosmos DB answered {status}: {server_message(error)}")


def server_message(error: BaseException) -> str:
    """The server's own message, first line, without the SDK's `Code: … Message: …` frame."""
    text = str(getattr(error, "message", None) or error)
    for line in text.splitlines():
        if line.startswith("Message:"):
            return line.removeprefix("Message:").strip()
    return text.splitlines()[0].strip() if text.strip() else type(error).__name__


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def cosmos_source(plan: FleetPlan | None, config) -> CosmosSource:
    """The source for the project's `uploader.sinks.cosmos` (enabled or not: its endpoint and key are what count)."""
    from uploader.sinks.cosmos import CosmosSinkSettings

    settings = config.uploader.sinks.named("cosmos") if config is not None else CosmosSinkSettings()
    assert isinstance(settings, CosmosSinkSettings)  # the registry's settings model for "cosmos"
    if not settings.endpoint:
        raise UsageError("--source cosmos: uploader.sinks.cosmos.endpoint is not set (or COSMOS_ENDPOINT, or --cosmos-config)")
    if not settings.key:
        raise UsageError("--source cosmos: uploader.sinks.cosmos.key is not set (or COSMOS_KEY, or --cosmos-config)")
    return CosmosSource(settings, plan)
