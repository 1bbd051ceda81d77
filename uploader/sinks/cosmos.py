"""The Azure Cosmos DB sink (the seed's central store): its settings and the seed's variables are accepted;
the sink itself is another issue, so enabling it is refused (not ignored) until it exists."""
from __future__ import annotations

from typing import Any, Mapping

from pydantic import field_validator

from fleetcore.errors import ConfigError
from uploader.sinks.base import Sink, SinkContext, SinkSettings, SinkSpec

NAME = "cosmos"


class CosmosSinkSettings(SinkSettings):
    endpoint: str | None = None
    key: str | None = None
    database_name: str = "SensorData"
    container_name: str = "SensorReadings"
    partition_key: str = "/city"

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
