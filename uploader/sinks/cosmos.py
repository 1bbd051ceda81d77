"""The Azure Cosmos DB sink (the seed's central store): one document per reading in a container.

Document = the canonical record (the lake's column names, JSON types, `timestamp` ISO-8601 UTC with `Z`,
`date` YYYY-MM-DD) plus `id` = `<project>.<sensor_id>.<fleet_epoch>.<seq>` (percent-encoded where Cosmos
forbids a character); the partition key value is the configured top-level field (`/city`: the city column).

Exactly once by construction: every document is sent with `create_item` (no read before write); 201 is
written, 409 Conflict means an earlier attempt already delivered it. A batch is Delivered only when every
document got 201 or 409 (or was dead-lettered: 400/413, the rest goes through).

Position: the sink's own record of how far each source got is a small document per app id in a second
container, `<container_name>-positions` (partition key `/id`), upserted once a part is fully delivered.
It keeps the readings container pure readings (the seed's `SELECT VALUE COUNT(1) FROM c` still counts
readings), survives `clean` (as Delta's app transactions do) and makes a resume one point read. A crash
between the documents and the position replays the part: it costs RUs (409s), never duplicates.

Throughput: the async client (`azure.cosmos.aio`), one client and connection pool for the sink's life on
its own event-loop thread, at most `max_in_flight` requests at once, issued partition by partition.
Faults: 429 waits `x-ms-retry-after-ms` in the SDK (up to 9 times), then Retry through the pipeline's
backoff; 408/449/5xx/timeouts/dropped connections are Retry; 401/403 stop the sink (failing permanently,
with the remedy in the reason). The request charge (`x-ms-request-charge`) of every response is summed
into `usage()` (RU total, RU/s, throttled requests) for the status file and `monitor`.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ipaddress
import os
import re
import threading
import time
import weakref
from collections import deque
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import quote, urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator

from fleetcore.errors import ConfigError
from uploader.batch import Batch, Rejection
from uploader.schema import CANONICAL_SCHEMA
from uploader.sinks import cosmos_client
from uploader.sinks.base import (
    CheckResult,
    Delivered,
    Outcome,
    Rejected,
    Retry,
    Sink,
    SinkContext,
    SinkSettings,
    SinkSpec,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from azure.cosmos.aio import CosmosClient as AsyncCosmosClient


NAME = "cosmos"
KEY_FILE_VARIABLE = "COSMOS_KEY_FILE"
POSITIONS_SUFFIX = "-positions"
FORBIDDEN_ID_CHARACTERS = "/\\?#%"  # Cosmos refuses / \ ? # in ids; % is escaped so the encoding is reversible
KEY_COLUMNS = ("timestamp", "sensor_id", "city", "project", "fleet_epoch", "source", "source_id", "seq")
RATE_WINDOW_SECONDS = 10.0
DELETE_PAGE = 1000
DOCUMENT_ATTEMPTS = 4  # per document and write, for 408/449/503/timeouts (429s the SDK has already waited out)
DOCUMENT_BACKOFF_SECONDS = 0.2
DOCUMENT_BACKOFF_MAX_SECONDS = 2.0
REJECT_STATUS = {400, 413}
AUTH_STATUS = {401, 403}
AUTH_REMEDY = ("the account refused the key: set COSMOS_KEY (uploader.sinks.cosmos.key) to the account's primary or "
               "secondary key (Azure portal → the account → Keys) and restart the uploader")


PARTITION_KEY_PATH = re.compile(r"^/[A-Za-z_][A-Za-z0-9_]*$")


def is_loopback(endpoint: str) -> bool:
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class CosmosSinkSettings(SinkSettings):
    endpoint: str | None = Field(None, description="the account URL, https://<account>.documents.azure.com:443/ (seed: COSMOS_ENDPOINT)")
    key: str | None = Field(None, description="the account's master key, base64 (seed: COSMOS_KEY); a secret")
    database_name: str = Field("SensorData", min_length=1, max_length=255, description="seed: COSMOS_DATABASE")
    container_name: str = Field("SensorReadings", min_length=1, max_length=255, description="seed: COSMOS_CONTAINER")
    partition_key: str = Field("/city", description="a top-level field path, /<field>; documents carry the value there")
    batch_size: int = Field(10_000, ge=1, le=1_000_000, description="documents per batch (one position update per source each)")
    max_in_flight: int = Field(8, ge=1, le=256, description="requests in flight at once (8 suits a serverless account)")
    preferred_regions: list[str] = Field(default_factory=list, description="Azure regions to prefer, in order")
    create_if_missing: bool = Field(True, description="create the database and container when absent (serverless: "
                                                      "the container gets no throughput setting)")
    verify_tls: bool = Field(True, description="false only for a loopback endpoint (a local server's self-signed "
                                               "certificate; env COSMOS_VERIFY_TLS)")

    @field_validator("endpoint")
    @classmethod
    def _endpoint_url(cls, endpoint: str | None) -> str | None:
        if endpoint is None:
            return None
        parts = urlsplit(endpoint.strip())
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"{endpoint!r} is not an https:// URL (expected https://<account>.documents.azure.com:443/)")
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError as error:
            raise ValueError(f"{endpoint!r} has an invalid port") from error
        return endpoint.strip()

    @field_validator("key")
    @classmethod
    def _base64_key(cls, key: str | None) -> str | None:
        if key is None:
            return None
        try:
            if not key.strip() or not base64.b64decode(key.strip(), validate=True):
                raise ValueError
        except (binascii.Error, ValueError):
            # Never echo the value: it is a secret, even when malformed.
            raise ValueError("is not a base64 master key (copy the primary key from the account's "
                             "Keys page)") from None
        return key.strip()

    @field_validator("partition_key")
    @classmethod
    def _top_level_path(cls, path: str) -> str:
        if not PARTITION_KEY_PATH.match(path):
            raise ValueError(f"{path!r} is not a top-level field path such as /city")
        return path

    @model_validator(mode="after")
    def _tls_off_only_on_loopback(self) -> CosmosSinkSettings:
        if not self.verify_tls and self.endpoint and not is_loopback(self.endpoint):
            raise ValueError(f"verify_tls: false is refused for {self.endpoint} (only a loopback endpoint, "
                             "a local test server, may skip certificate checks)")
        return self

    @property
    def partition_field(self) -> str:
        return self.partition_key[1:]


def document_id(project: str, sensor_id: str, fleet_epoch: int, seq: int) -> str:
    """The reading's key as a legal Cosmos id (no / \\ ? #). The project too: two projects whose seeds make the
    same sensor ids can share a container, as they share a lake."""
    parts = [project, sensor_id]
    for n, part in enumerate(parts):
        if any(character in FORBIDDEN_ID_CHARACTERS for character in part):
            parts[n] = quote(part, safe="")
    return f"{parts[0]}.{parts[1]}.{fleet_epoch}.{seq}"


def _json_value(value):
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, date):
        return value.isoformat()
    return value


def documents(rows: pa.RecordBatch, now: datetime | None = None) -> list[dict]:
    """The Cosmos documents of canonical rows; `now` replaces every timestamp (--development).

    Raises ValueError naming the first row whose key columns are missing (the batch is refused whole)."""
    stamp = _json_value(now) if now is not None else None
    docs = []
    for row in rows.to_pylist():
        missing = [name for name in KEY_COLUMNS if row.get(name) is None]
        if missing:
            raise ValueError(f"source row {row.get('source_id')} has no {', '.join(missing)}")
        doc = {name: _json_value(value) for name, value in row.items()}
        if stamp is not None:
            doc["timestamp"], doc["date"] = stamp, stamp[:10]
        doc["id"] = document_id(row["project"], row["sensor_id"], row["fleet_epoch"], row["seq"])
        docs.append(doc)
    return docs


class _Usage:
    """Request units and throttling, summed from every response the SDK sees (its own 429 retries included)."""

    def __init__(self) -> None:
        self.request_units = 0.0
        self.throttled = 0
        self._recent: deque[tuple[float, float]] = deque()
        self._lock = threading.Lock()

    def hook(self, response) -> None:
        http = getattr(response, "http_response", None)
        if http is None:
            return
        charge = http.headers.get("x-ms-request-charge")
        with self._lock:
            if http.status_code == 429:
                self.throttled += 1
            if charge:
                units = float(charge)
                self.request_units += units
                self._recent.append((time.monotonic(), units))

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            horizon = time.monotonic() - RATE_WINDOW_SECONDS
            while self._recent and self._recent[0][0] < horizon:
                self._recent.popleft()
            per_second = sum(units for _, units in self._recent) / RATE_WINDOW_SECONDS
            return {"request_units": round(self.request_units, 2), "request_units_per_second": round(per_second, 2),
                    "throttled": self.throttled}


class CosmosSink:
    """Readings as documents in one container; positions in `<container>-positions` (see the module doc)."""

    name = NAME

    def __init__(self, settings: CosmosSinkSettings, stage: str = "raw", development: bool = False):
        self.settings = settings
        self.stage = stage
        self.development = development
        self.field = settings.partition_field
        if self.field not in CANONICAL_SCHEMA.names:
            raise ConfigError(f"uploader.sinks.cosmos.partition_key: {settings.partition_key} is no field of a reading "
                              f"(choose one of /{', /'.join(('city', 'sensor_id', 'date', 'project'))} …)")
        self.usage = _Usage()
        self._positions: dict[str, int] = {}
        self._confirmed: dict[str, set[int]] = {}  # per app id: source ids confirmed by a write not yet Delivered
        self._loop = asyncio.new_event_loop()
        thread = threading.Thread(target=self._loop.run_forever, name="cosmos-sink", daemon=True)
        thread.start()
        self._clients: list[AsyncCosmosClient] = []  # the one client, once opened (a list the finalizer shares)
        self._containers: tuple[Any, Any] | None = None  # (readings, positions) container proxies
        # Whoever built the sink (the uploader, preflight, clean) need not close it: collection or exit does.
        self.close = weakref.finalize(self, _shut_down, self._loop, thread, self._clients)

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _open(self, create: bool | None = None):
        if self._containers is None:
            if not self._clients:
                self._clients.append(cosmos_client.async_client(self.settings))
            readings = await cosmos_client.async_container(self._clients[0], self.settings, create)
            positions_settings = self.settings.model_copy(update={
                "container_name": self.settings.container_name + POSITIONS_SUFFIX, "partition_key": "/id"})
            positions = await cosmos_client.async_container(self._clients[0], positions_settings, create)
            self._containers = (readings, positions)
        return self._containers

    # -- the contract -------------------------------------------------------------------------------
    def check(self) -> CheckResult:
        from azure.cosmos import exceptions

        where = f"{self.settings.database_name}/{self.settings.container_name}"
        try:
            readings, _ = self._run(self._open())
            properties = self._run(readings.read())
        except exceptions.CosmosResourceNotFoundError:
            self._containers = None
            return CheckResult(False, f"{NAME}: {where} does not exist and create_if_missing is false: create the "
                                      f"database, the container (partition key {self.settings.partition_key}) and "
                                      f"{self.settings.container_name}{POSITIONS_SUFFIX} (partition key /id)")
        except exceptions.CosmosHttpResponseError as exc:
            self._containers = None
            if exc.status_code in AUTH_STATUS:
                return CheckResult(False, f"{NAME}: {AUTH_REMEDY}")
            return CheckResult(False, f"{NAME}: {where}: {_short(exc)}")
        except Exception as exc:  # noqa: BLE001 - DNS, TLS, refused connections: reported, not raised
            self._containers = None
            return CheckResult(False, f"{NAME}: cannot reach {self.settings.endpoint}: {_short(exc)}")
        paths = properties.get("partitionKey", {}).get("paths", [])
        if paths != [self.settings.partition_key]:
            return CheckResult(False, f"{NAME}: {where} is partitioned by {', '.join(paths) or 'nothing'}, the config says "
                                      f"{self.settings.partition_key}: set uploader.sinks.cosmos.partition_key to match "
                                      "or use another container")
        return CheckResult(True, f"{NAME}: {where} ok (partition key {self.settings.partition_key})")

    def resume_from(self, app_id: str) -> int | None:
        return self._run(self._held(app_id))

    async def _held(self, app_id: str) -> int:
        if app_id not in self._positions:
            _, positions = await self._open()
            key = _position_id(app_id)
            # A query, not a point read: the local test server answers a read of a missing id with a 500.
            found = [value async for value in positions.query_items(
                "SELECT VALUE c.position FROM c WHERE c.id = @id", parameters=[{"name": "@id", "value": key}],
                partition_key=key, raw_response_hook=self.usage.hook)]
            self._positions[app_id] = int(found[0]) if found else 0
        return self._positions[app_id]

    def write(self, batch: Batch) -> Outcome:
        from azure.cosmos import exceptions

        try:
            held = {part.app_id: self._run(self._held(part.app_id)) for part in batch.parts}
        except exceptions.CosmosHttpResponseError as exc:
            return self._failure(exc)
        except Exception as exc:  # noqa: BLE001 - unreachable: the pipeline backs off
            self._containers = None
            return Retry(f"{NAME}: cannot reach {self.settings.endpoint}: {_short(exc)}")
        due = [part for part in batch.parts if held[part.app_id] == part.after and part.upto > part.after]
        now = datetime.now(timezone.utc) if self.development else None
        confirmed = 0
        for part in due:
            done = self._confirmed.setdefault(part.app_id, set())
            rejections: list[Rejection] = []
            for chunk in batch.stream([part]):
                try:
                    docs = documents(chunk, now)
                except ValueError as exc:
                    return Rejected(f"{NAME}: {exc}")
                failure = self._run(self._send([doc for doc in docs if doc["source_id"] not in done], done, rejections))
                if failure is not None:
                    return failure
            confirmed += part.rows - len(rejections)
            if rejections:  # refused by the service (too large, bad partition key): dead-lettered, the rest went through
                part.rejected.extend(rejections)
                part.on_rejected(rejections)
        try:
            self._run(self._record({part.app_id: part.upto for part in due}))
        except exceptions.CosmosHttpResponseError as exc:
            return self._failure(exc)
        except Exception as exc:  # noqa: BLE001
            return Retry(f"{NAME}: position not recorded: {_short(exc)}")
        for part in due:
            self._confirmed.pop(part.app_id, None)
        return Delivered({part.app_id: part.upto if part in due else held[part.app_id] for part in batch.parts},
                         rows=confirmed)

    def _failure(self, exc) -> Retry:
        if exc.status_code in AUTH_STATUS:
            return Retry(f"{NAME}: {AUTH_REMEDY}", permanent=True)
        if exc.status_code == 404:
            self._containers = None  # deleted under us: open (and create, if allowed) again next time
        return Retry(f"{NAME}: {exc.status_code} {_short(exc)}")

    async def _send(self, docs: list[dict], done: set[int], rejections: list[Rejection]) -> Retry | None:
        """Create every document, `max_in_flight` at a time, partition by partition; None when all are settled.

        `done` collects the source ids confirmed (201/409), so a batch retried after a failure sends only
        the rest. A transient failure is retried here a few times before the batch is."""
        from azure.cosmos import exceptions

        readings, _ = await self._open()
        docs.sort(key=lambda doc: str(doc.get(self.field)))
        gate = asyncio.Semaphore(self.settings.max_in_flight)
        failures: list[Retry] = []

        async def create(doc: dict) -> None:
            async with gate:
                for attempt in range(DOCUMENT_ATTEMPTS):
                    if failures:  # the batch is retried anyway: stop sending (a down account fails fast)
                        return
                    try:
                        await readings.create_item(doc, raw_response_hook=self.usage.hook)
                        done.add(doc["source_id"])
                        return
                    except exceptions.CosmosResourceExistsError:
                        done.add(doc["source_id"])  # delivered by an earlier attempt
                        return
                    except exceptions.CosmosHttpResponseError as exc:
                        if exc.status_code in REJECT_STATUS:
                            rejections.append(Rejection(doc["source_id"], f"rejected by {NAME}: {exc.status_code} {_short(exc)}"))
                            return
                        failure = self._failure(exc)
                        if failure.permanent:
                            failures.insert(0, failure)
                            return
                    except Exception as exc:  # noqa: BLE001 - timeouts, dropped connections
                        failure = Retry(f"{NAME}: {type(exc).__name__}: {_short(exc)}")
                    await asyncio.sleep(min(DOCUMENT_BACKOFF_MAX_SECONDS, DOCUMENT_BACKOFF_SECONDS * 2 ** attempt))
                failures.append(failure)

        await asyncio.gather(*(create(doc) for doc in docs))
        return failures[0] if failures else None

    async def _record(self, positions: dict[str, int]) -> None:
        _, container = await self._open()
        stamp = _json_value(datetime.now(timezone.utc))
        await asyncio.gather(*(container.upsert_item(
            {"id": _position_id(app_id), "app_id": app_id, "position": position, "updated_at": stamp},
            raw_response_hook=self.usage.hook) for app_id, position in positions.items()))
        self._positions.update(positions)

    # -- clean / reset --------------------------------------------------------------------------------
    def _where(self, project: str, fleet_epoch: int | None) -> tuple[str, list[dict[str, Any]]]:
        clause = "c.project = @project" + (" AND c.fleet_epoch = @epoch" if fleet_epoch is not None else "")
        parameters: list[dict[str, Any]] = [{"name": "@project", "value": project}]
        if fleet_epoch is not None:
            parameters.append({"name": "@epoch", "value": fleet_epoch})
        return clause, parameters

    def count_project(self, project: str, fleet_epoch: int | None = None) -> int:
        clause, parameters = self._where(project, fleet_epoch)

        async def count() -> int:
            readings, _ = await self._open()
            values = [value async for value in readings.query_items(
                f"SELECT VALUE COUNT(1) FROM c WHERE {clause}", parameters=parameters, raw_response_hook=self.usage.hook)]
            return int(sum(values))

        return self._run(count())

    def delete_project(self, project: str, fleet_epoch: int | None = None) -> int:
        """Delete the project's documents (never the container), a page at a time, partition by partition."""
        from azure.cosmos import exceptions

        clause, parameters = self._where(project, fleet_epoch)
        query = f'SELECT TOP {DELETE_PAGE} c.id, c["{self.field}"] AS pk FROM c WHERE {clause}'

        async def delete_all() -> int:
            readings, _ = await self._open()
            gate = asyncio.Semaphore(self.settings.max_in_flight)
            deleted = 0

            async def delete(doc: dict) -> int:
                async with gate:
                    try:
                        await readings.delete_item(doc["id"], partition_key=doc.get("pk"),
                                                   raw_response_hook=self.usage.hook)
                        return 1
                    except exceptions.CosmosResourceNotFoundError:
                        return 0

            while True:
                page = [doc async for doc in readings.query_items(query, parameters=parameters,
                                                                   raw_response_hook=self.usage.hook)]
                if not page:
                    return deleted
                page.sort(key=lambda doc: str(doc.get("pk")))
                deleted += sum(await asyncio.gather(*(delete(doc) for doc in page)))

        return self._run(delete_all())

    def mark_shipped(self, positions: dict[str, int]) -> None:
        self._run(self._record(positions))


def _shut_down(loop: asyncio.AbstractEventLoop, thread: threading.Thread, clients: list) -> None:
    """Close the client's connections on its loop, then stop the loop (`CosmosSink.close`)."""
    for client in clients:
        asyncio.run_coroutine_threadsafe(client.close(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    loop.close()


def _position_id(app_id: str) -> str:
    return hashlib.sha256(app_id.encode()).hexdigest()


def _short(exc: BaseException) -> str:
    """The first line of an SDK error (its full text carries headers and diagnostics)."""
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return message.strip().splitlines()[0][:300]


def _build(settings: CosmosSinkSettings, context: SinkContext) -> Sink:
    key_file = os.environ.get(KEY_FILE_VARIABLE)
    if not settings.key and key_file:  # in a container the key arrives as a 0400 file, never in the config
        try:
            key = Path(key_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{KEY_FILE_VARIABLE}={key_file}: cannot read the Cosmos key ({exc.strerror})") from exc
        try:
            settings = CosmosSinkSettings.model_validate({**settings.model_dump(), "key": key})
        except ValidationError as exc:
            raise ConfigError(f"{KEY_FILE_VARIABLE}={key_file}: the file's key {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    if not settings.endpoint or not settings.key:
        raise ConfigError("uploader.sinks.cosmos: set endpoint and key (COSMOS_ENDPOINT and COSMOS_KEY)")
    return CosmosSink(settings, context.stage, context.development)


def _key_file(settings: CosmosSinkSettings, environ: Mapping[str, str]) -> dict[str, str]:
    return {"cosmos_key": settings.key} if settings.key else {}


def _preflight(settings: CosmosSinkSettings, environ: Mapping[str, Any]) -> list[str]:
    problems = []
    if not (settings.endpoint or environ.get("COSMOS_ENDPOINT")):
        problems.append("the cosmos sink has no endpoint: set uploader.sinks.cosmos.endpoint or COSMOS_ENDPOINT")
    if not (settings.key or environ.get("COSMOS_KEY")):
        problems.append("the cosmos sink has no key: set COSMOS_KEY (or uploader.sinks.cosmos.key)")
    return problems


SPEC = SinkSpec(
    name=NAME,
    settings=CosmosSinkSettings,
    build=_build,
    location=lambda settings, context: f"cosmos {settings.database_name}/{settings.container_name}",
    needs_network=True,
    secrets=_key_file,
    secret_env={"cosmos_key": KEY_FILE_VARIABLE},
    preflight=_preflight,
    cleans="the documents whose project (and, for reset, fleet_epoch) is this project's, page by page and partition "
           "by partition; never the container",
)
