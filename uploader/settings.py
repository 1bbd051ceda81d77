"""The `uploader:` section of the project config, and the resolved settings file `python -m uploader --config` reads."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import Field, ValidationError, create_model

from fleetcore.errors import ConfigError
from fleetcore.models import StrictModel
from uploader.sinks import SINKS
from uploader.sinks.base import SinkSettings


class _Sinks(StrictModel):
    """`uploader.sinks`: one key per registered sink, holding that sink's own settings model."""

    def named(self, name: str) -> SinkSettings:
        return getattr(self, name)

    def enabled(self) -> dict[str, SinkSettings]:
        """The enabled sinks' settings by name, in registry order."""
        return {name: self.named(name) for name in SINKS if self.named(name).enabled}


if TYPE_CHECKING:
    SinksSettings = _Sinks
else:
    SinksSettings = create_model("SinksSettings", __base__=_Sinks, **{
        name: (spec.settings, Field(default_factory=spec.settings)) for name, spec in SINKS.items()})


MAX_INTERVAL_SECONDS = 86_400


class UploaderSettings(StrictModel):
    interval_seconds: float = Field(30.0, gt=0, le=MAX_INTERVAL_SECONDS)
    stage: Literal["raw", "schematized", "sanitized", "aggregated"] = "raw"
    read_batch_rows: int = Field(250_000, ge=1, le=5_000_000)
    naive_timestamps: Literal["utc", "local"] = "utc"
    sinks: SinksSettings = Field(default_factory=SinksSettings)


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
