"""The one place that builds Azure Cosmos DB clients from `CosmosSinkSettings`.

TLS verification is off only when the settings say so, and the settings refuse that for any endpoint
that is not loopback (the local test server's self-signed certificate). Callers keep a client for as
long as they work: a new client opens new TLS connections (~80 ms each against the local server).
"""
from __future__ import annotations

import logging
import re
import warnings
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from azure.cosmos import ContainerProxy
    from azure.cosmos.aio import CosmosClient as AsyncCosmosClient


class CosmosSinkSettings(Protocol):
    """What a client needs of `uploader.sinks.cosmos.CosmosSinkSettings` (declared there; no import ring)."""

    endpoint: str | None
    key: str | None
    database_name: str
    container_name: str
    partition_key: str
    preferred_regions: list[str]
    create_if_missing: bool
    verify_tls: bool

# The SDK logs every request and response (headers included) at INFO: far too much for a service's log.
for _name in ("azure.core.pipeline.policies.http_logging_policy", "azure.cosmos._cosmos_http_logging_policy"):
    logging.getLogger(_name).setLevel(logging.WARNING)

CONNECTION_TIMEOUT_SECONDS = 10
READ_TIMEOUT_SECONDS = 60
# The SDK's own 429 handling: it waits x-ms-retry-after-ms itself, this many times and this long in all,
# before a 429 reaches the sink (whose backoff then paces it).
THROTTLE_RETRIES = 9
THROTTLE_WAIT_SECONDS = 30


def client_options(settings: CosmosSinkSettings) -> dict[str, Any]:
    """Keyword arguments shared by the sync and async clients."""
    options: dict[str, Any] = {
        "connection_timeout": CONNECTION_TIMEOUT_SECONDS,
        "read_timeout": READ_TIMEOUT_SECONDS,
        "retry_total": THROTTLE_RETRIES,
        "retry_backoff_max": THROTTLE_WAIT_SECONDS,
        "user_agent": "sensor-manager",
    }
    if settings.preferred_regions:
        options["preferred_locations"] = list(settings.preferred_regions)
    if not settings.verify_tls:  # allowed for loopback endpoints only (see CosmosSinkSettings)
        options["connection_verify"] = False
    return options


def _require(settings: CosmosSinkSettings) -> tuple[str, str]:
    from fleetcore.errors import ConfigError

    if not settings.endpoint:
        raise ConfigError("uploader.sinks.cosmos.endpoint is not set (or COSMOS_ENDPOINT)")
    if not settings.key:
        raise ConfigError("uploader.sinks.cosmos.key is not set (or COSMOS_KEY)")
    return settings.endpoint, settings.key


def sync_client(settings: CosmosSinkSettings):
    """A blocking `azure.cosmos.CosmosClient` (queries, diagnostics, clean)."""
    from azure.cosmos import CosmosClient

    endpoint, key = _require(settings)
    host = urlsplit(endpoint).hostname or ""
    # urllib3 warns on every unverified request: when verify_tls is off (confined to loopback by the settings),
    # and always for localhost/127.0.0.1, whose certificates the SDK itself never verifies.
    if not settings.verify_tls or host in ("localhost", "127.0.0.1"):
        warnings.filterwarnings("ignore", message=f"Unverified HTTPS request is being made to host '{re.escape(host)}'")
    return CosmosClient(endpoint, credential=key, **client_options(settings))


def sync_container(settings: CosmosSinkSettings, create: bool | None = None) -> ContainerProxy:
    """The configured container, blocking. `create` (default: `create_if_missing`) makes the database and
    container (partition key from the settings) when they do not exist; else a missing one raises
    `azure.cosmos.exceptions.CosmosResourceNotFoundError` on first use."""
    from azure.cosmos import PartitionKey

    client = sync_client(settings)
    if settings.create_if_missing if create is None else create:
        database = client.create_database_if_not_exists(settings.database_name)
        return database.create_container_if_not_exists(settings.container_name,
                                                        PartitionKey(path=settings.partition_key))
    return client.get_database_client(settings.database_name).get_container_client(settings.container_name)


def async_client(settings: CosmosSinkSettings) -> AsyncCosmosClient:
    """An `azure.cosmos.aio.CosmosClient`; create it inside the event loop that uses it and close it there."""
    from azure.cosmos.aio import CosmosClient

    endpoint, key = _require(settings)
    return CosmosClient(endpoint, credential=key, **client_options(settings))


async def async_container(client: AsyncCosmosClient, settings: CosmosSinkSettings, create: bool | None = None):
    """The configured container through an async client (see `sync_container` for `create`)."""
    from azure.cosmos import PartitionKey

    if settings.create_if_missing if create is None else create:
        database = await client.create_database_if_not_exists(settings.database_name)
        return await database.create_container_if_not_exists(settings.container_name,
                                                             PartitionKey(path=settings.partition_key))
    return client.get_database_client(settings.database_name).get_container_client(settings.container_name)
