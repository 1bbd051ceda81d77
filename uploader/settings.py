"""The `uploader:` section of the project config, and the resolved settings file `python -m uploader --config` reads."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import yaml
from pydantic import Field, ValidationError, field_validator

from fleetcore.errors import ConfigError
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


class PlannedSinkSettings(SinkSettings):
    """A sink the uploader does not implement yet: its settings are accepted, enabling it is refused (not ignored)."""

    sink_name: ClassVar[str] = ""

    @field_validator("enabled")
    @classmethod
    def _refuse_enabled(cls, enabled: bool) -> bool:
        if enabled:
            raise ValueError(f"the {cls.sink_name} sink is not implemented yet (the uploader ships to delta only); "
                             "set it to false in the config file")
        return enabled


class ParquetSinkSettings(PlannedSinkSettings):
    sink_name: ClassVar[str] = "parquet"
    path: str | None = Field(None, description="default <project-dir>/archive")


class S3SinkSettings(PlannedSinkSettings):
    sink_name: ClassVar[str] = "s3"
    bucket: str | None = None
    prefix: str = "sensor_readings"
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None


class CosmosSinkSettings(PlannedSinkSettings):
    sink_name: ClassVar[str] = "cosmos"
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


MAX_INTERVAL_SECONDS = 86_400


class UploaderSettings(StrictModel):
    interval_seconds: float = Field(30.0, gt=0, le=MAX_INTERVAL_SECONDS)
    stage: Literal["raw", "schematized", "sanitized", "aggregated"] = "raw"
    read_batch_rows: int = Field(250_000, ge=1, le=5_000_000)
    naive_timestamps: Literal["utc", "local"] = "utc"
    sinks: SinksSettings = SinksSettings()


def read_settings_file(path: Path) -> tuple[UploaderSettings, str | None]:
    """The `uploader:` section and `project` name of a resolved settings document (YAML or JSON).

    sensor-manager renders this document (the container's role config, or state/uploader-settings.json
    for the local runtime) from the fully resolved fleet config, so it is read literally: no `${VAR}`
    expansion, no `.env`, no environment overrides. Other top-level keys are ignored.
    """
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"--config {path}: cannot read it ({exc})") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"--config {path}: expected a mapping with an uploader: section")
    try:
        settings = UploaderSettings.model_validate(document.get("uploader") or {})
    except ValidationError as exc:
        raise ConfigError([f"{path}: uploader.{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
                           for error in exc.errors()]) from exc
    project = document.get("project")
    return settings, (str(project) if project is not None else None)
