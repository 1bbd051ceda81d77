"""The Azure Cosmos DB sink (the seed's central store): its settings and the seed's variables are accepted;
the sink itself is another issue, so enabling it is refused (not ignored) until it exists."""
from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from typing import Any, Mapping
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from fleetcore.errors import ConfigError
from uploader.sinks.base import Sink, SinkContext, SinkSettings, SinkSpec

NAME = "cosmos"


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

    @field_validator("enabled")
    @classmethod
    def _refuse_enabled(cls, enabled: bool) -> bool:
        if enabled:
            raise ValueError("the cosmos sink is not implemented yet (the uploader ships to delta, parquet and s3); "
                             "set it to false in the config file")
        return enabled


def _build(settings: CosmosSinkSettings, context: SinkContext) -> Sink:
    raise ConfigError("uploader.sinks.cosmos: the cosmos sink is not implemented yet")


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
    secret_env={"cosmos_key": "COSMOS_KEY_FILE"},
    preflight=_preflight,
)
