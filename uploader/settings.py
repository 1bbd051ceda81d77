"""The `uploader:` section of the project config (also read by `python -m uploader --config`)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from fleetcore.models import StrictModel


class RetrySettings(StrictModel):
    initial_seconds: float = Field(1.0, gt=0, le=60)
    max_seconds: float = Field(60.0, gt=0, le=3600)
    once_max_attempts: int = Field(5, ge=1, le=100, description="attempts per batch in --once mode")


class SinkSettings(StrictModel):
    """Settings every sink shares; each sink's own model adds to these."""

    enabled: bool = False
    batch_size: int = Field(250_000, ge=1, le=5_000_000)
    retry: RetrySettings = RetrySettings()


class DeltaSinkSettings(SinkSettings):
    enabled: bool = True
    path: str | None = Field(None, description="table location; default <lake>/sensor_readings")
    commit_retries: int = Field(20, ge=0, le=1000)


class ParquetSinkSettings(SinkSettings):
    path: str | None = Field(None, description="default <project-dir>/archive")


class S3SinkSettings(SinkSettings):
    bucket: str | None = None
    prefix: str = "sensor_readings"
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None


class CosmosSinkSettings(SinkSettings):
    endpoint: str | None = None
    key: str | None = None
    database_name: str = "SensorData"
    container_name: str = "SensorReadings"
    partition_key: str = "/city"


class SinksSettings(StrictModel):
    delta: DeltaSinkSettings = DeltaSinkSettings()
    parquet: ParquetSinkSettings = ParquetSinkSettings()
    s3: S3SinkSettings = S3SinkSettings()
    cosmos: CosmosSinkSettings = CosmosSinkSettings()


class UploaderSettings(StrictModel):
    interval_seconds: float = Field(30.0, gt=0, le=86_400)
    stage: Literal["raw", "schematized", "sanitized", "aggregated"] = "raw"
    read_batch_rows: int = Field(250_000, ge=1, le=5_000_000)
    naive_timestamps: Literal["utc", "local"] = "utc"
    sinks: SinksSettings = SinksSettings()
