"""The `docker:` section of the project config: how the compose stack is shaped and where its image comes from.

Every field has a default, so a config without a `docker:` section renders the seed's layout (one
container per sensor) with least-privilege containers.
"""
from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_BASE_IMAGE = "python:3.12-slim"


class DockerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=True)

    sensors_per_container: int = Field(1, ge=1, le=1000, description="sensors of one city hosted by one container")
    base_image: str | None = Field(None, description="base image of the build; $BASE_IMAGE wins; default python:3.12-slim")
    image_repository: str = Field("sensor-manager", min_length=1, description="local repository name of the built image")
    sensor_memory: str = Field("256m", pattern=r"^[0-9]+[kmg]$", description="memory limit of a sensor container")
    uploader_memory: str = Field("1g", pattern=r"^[0-9]+[kmg]$", description="memory limit of an uploader container")
    tmpfs_size: str = Field("16m", pattern=r"^[0-9]+[kmg]$", description="size of the /tmp tmpfs of every container")
    healthcheck_interval_seconds: int = Field(10, ge=1, le=3600)
    healthcheck_retries: int = Field(3, ge=1, le=100)
    start_period_seconds: int = Field(60, ge=0, le=3600, description="grace period before failed checks count")
    restart_max_attempts: int = Field(5, ge=1, le=100, description="restart: on-failure:<N>")
    stop_grace_seconds: int = Field(10, ge=1, le=600, description="SIGTERM to SIGKILL at stop")
    wheelhouse: str | None = Field(None, description="wheel cache for offline builds; default <project-dir>/state/wheelhouse")
    uploader_network: str | None = Field(
        None, pattern=r"^(none|host)$", description="force the uploaders' network (default: host only when a sink needs it)"
    )


def resolve_base_image(settings: DockerSettings, requested: str | None = None) -> str:
    """--base-image > $BASE_IMAGE > docker.base_image > python:3.12-slim (flag > environment > file > default)."""
    return requested or os.environ.get("BASE_IMAGE") or settings.base_image or DEFAULT_BASE_IMAGE


def docker_settings(config) -> DockerSettings:
    """The config's `docker:` section."""
    return config.docker
