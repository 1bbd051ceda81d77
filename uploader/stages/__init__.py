"""Stages turn source rows into what a sink receives; each returns the rows kept plus the rows rejected with a reason.

`raw`, `schematized` and `sanitized` map a chunk of readings to canonical readings (`apply`); `aggregated`
folds them into per-sensor windows (`fold`, with state the delivery keeps per sink and source).
"""
from __future__ import annotations

from pathlib import Path

from uploader.settings import UploaderSettings
from uploader.stages.aggregate import AggregateStage
from uploader.stages.raw import RawStage
from uploader.stages.sanitize import KEY_FILE, SanitizedStage, read_hash_key
from uploader.stages.schematize import SchematizedStage

Stage = RawStage | AggregateStage


def stage_named(name: str, settings: UploaderSettings | None = None, state_root: Path | None = None) -> Stage:
    """The stage for a config value, set up from `uploader.sanitized` / `uploader.aggregated`."""
    settings = settings or UploaderSettings()
    if name == "schematized":
        return SchematizedStage()
    if name == "sanitized":
        sanitized = settings.sanitized
        root = state_root or Path(".uploader-state")
        configured = Path(sanitized.hash_key_file).expanduser() if sanitized.hash_key_file else None
        # A configured path is relative to the project directory (the state root's parent).
        key_file = root / KEY_FILE if configured is None else configured if configured.is_absolute() else root.parent / configured
        return SanitizedStage(read_hash_key(key_file), sanitized.coordinate_decimals, tuple(sanitized.drop))
    if name == "aggregated":
        aggregated = settings.aggregated
        return AggregateStage(aggregated.window_seconds, aggregated.lateness_seconds,
                              aggregated.table_suffix.removeprefix("_"))
    return RawStage()
