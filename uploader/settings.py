"""The `uploader:` section of the project config, and the resolved settings file `python -m uploader --config` reads."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import Field, ValidationError, create_model, field_validator, model_validator

from fleetcore.durations import parse_duration
from fleetcore.errors import ConfigError, UsageError
from fleetcore.models import StrictModel
from uploader.sinks import SINKS
from uploader.sinks.base import SinkSettings, StageName


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
# Columns a sanitized row must keep: its key, partitions and lineage.
KEPT_COLUMNS = frozenset({"timestamp", "sensor_id", "seq", "city", "date", "project", "fleet_epoch", "source",
                          "generation", "source_id", "uploader_id", "stage"})
UNIT_NAMES = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))


def window_name(seconds: int) -> str:
    """The one spelling of a window length (its table suffix): the largest unit that divides it (300 → 5m, 90 → 90s)."""
    unit, size = next((unit, size) for unit, size in UNIT_NAMES if seconds % size == 0)
    return f"{seconds // size}{unit}"


def _seconds(text: str, key: str, minimum: float) -> float:
    try:
        seconds = parse_duration(str(text), key)
    except UsageError as exc:
        raise ValueError(str(exc).removeprefix(f"{key} ")) from None
    if seconds < minimum:
        raise ValueError(f"at least {minimum:g} s, not {text!r}")
    return seconds


class SanitizedSettings(StrictModel):
    coordinate_decimals: int = Field(3, ge=0, le=6, description="latitude/longitude decimals kept (3 ≈ 110 m)")
    hash_key_file: str | None = Field(None, description="secret key of the keyed hash of serial_number and instance_id (relative: to the project directory); "
                                                        "default <state>/checkpoints/sanitize-hash.key, made on first use")
    drop: list[str] = Field(default_factory=list, description="columns emptied (null) in sanitized rows")

    @field_validator("drop")
    @classmethod
    def _droppable(cls, drop: list[str]) -> list[str]:
        from uploader.schema import CANONICAL_SCHEMA

        unknown = [name for name in drop if name not in CANONICAL_SCHEMA.names]
        if unknown:
            raise ValueError(f"no such column {unknown[0]!r} (columns: {', '.join(CANONICAL_SCHEMA.names)})")
        kept = sorted(set(drop) & KEPT_COLUMNS)
        if kept:
            raise ValueError(f"{kept[0]!r} is part of a row's key, partition or lineage and cannot be dropped")
        return drop


class AggregatedSettings(StrictModel):
    window: str = Field("1m", description="tumbling window per sensor, a duration (1m, 5m, 1h); table sensor_readings_<window>")
    allowed_lateness: str = Field("30s", description="how far behind the newest reading a row may arrive and still count")

    @field_validator("window")
    @classmethod
    def _window(cls, window: str) -> str:
        seconds = _seconds(window, "window", 1)
        if seconds != int(seconds):
            raise ValueError(f"a whole number of seconds, not {window!r}")
        return window

    @field_validator("allowed_lateness")
    @classmethod
    def _lateness(cls, lateness: str) -> str:
        _seconds(lateness, "allowed_lateness", 0)
        return lateness

    @property
    def window_seconds(self) -> int:
        return int(parse_duration(self.window, "window"))

    @property
    def lateness_seconds(self) -> float:
        return parse_duration(self.allowed_lateness, "allowed_lateness")

    @property
    def table_suffix(self) -> str:
        return f"_{window_name(self.window_seconds)}"


class UploaderSettings(StrictModel):
    interval_seconds: float = Field(30.0, gt=0, le=MAX_INTERVAL_SECONDS)
    stage: StageName = "raw"
    read_batch_rows: int = Field(250_000, ge=1, le=5_000_000)
    naive_timestamps: Literal["utc", "local"] = "utc"
    sanitized: SanitizedSettings = Field(default_factory=SanitizedSettings)
    aggregated: AggregatedSettings = Field(default_factory=AggregatedSettings)
    sinks: SinksSettings = Field(default_factory=SinksSettings)

    def stage_of(self, sink: str) -> str:
        """The stage whose output `sink` receives: its own `stage`, else `uploader.stage`."""
        return self.sinks.named(sink).stage or self.stage

    @model_validator(mode="after")
    def _sinks_hold_their_stage(self) -> UploaderSettings:
        for name, settings in self.sinks.enabled().items():
            stage = self.stage_of(name)
            if stage not in SINKS[name].stages:
                takes = ", ".join(sorted(SINKS[name].stages))
                if settings.stage:
                    raise ValueError(f"sinks.{name}.stage: the {name} sink cannot hold {stage} output (it takes {takes})")
                raise ValueError(f"stage: {stage} output cannot go to the {name} sink (it takes {takes}); "
                                 f"give uploader.sinks.{name}.stage one of those")
        return self


def read_settings_file(path: Path) -> tuple[UploaderSettings, str | None]:
    """The `uploader:` section and `project` name of a resolved settings document (YAML or JSON).

    sensor-manager renders this document (the container's role config, or state/uploader-settings.json
    for the local runtime) from the fully resolved fleet config, so it is read literally: no `${VAR}`
    expansion, no `.env`, no environment overrides. Other top-level keys are ignored.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read it ({exc})") from exc
    return parse_settings(data, path)


def parse_settings(data: bytes, path: Path) -> tuple[UploaderSettings, str | None]:
    """`read_settings_file` of bytes already read (the running uploader's reload reads them once, for the digest too)."""
    try:
        document = yaml.safe_load(data) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config {path}: cannot read it ({exc})") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"--config {path}: expected a mapping with an uploader: section")
    try:
        settings = UploaderSettings.model_validate(document.get("uploader") or {})
    except ValidationError as exc:
        raise ConfigError([f"{path}: {'.'.join(['uploader', *(str(p) for p in error['loc'])])}: {error['msg']}"
                           for error in exc.errors()]) from exc
    project = document.get("project")
    return settings, (str(project) if project is not None else None)
