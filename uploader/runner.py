"""Run an uploader from options: take its settings, resolve the invocation, run once or continuously.

The one library entry point behind `python -m uploader` and `./sensor_manager.py upload`.
SIGTERM (and SIGINT) finish the batch in flight, record progress and return normally.
"""
from __future__ import annotations

from pathlib import Path

from fleetcore.signals import stop_on_signals
from uploader.invocation import Invocation, resolve_invocation
from uploader.settings import UploaderSettings, read_settings_file
from uploader.status import check_health


def load_invocation(*, sqlite: Path, settings: UploaderSettings | None = None, project: str | None = None,
                    config: Path | None = None, project_dir: Path | None = None, **options) -> Invocation:
    """Settings come from the caller (sensor-manager's `upload`), else from the resolved file `config`, else defaults."""
    if settings is None and config is not None:
        settings, project = read_settings_file(config)
    return resolve_invocation(sqlite=sqlite, settings=settings or UploaderSettings(), config_project=project,
                              project_dir=project_dir, config_path=config, **options)


def check(**options) -> tuple[bool, str]:
    """The container healthcheck: the status file is fresh and no sink is failing permanently."""
    return check_health(load_invocation(**options).status_path)


def upload(**options) -> bool:
    """Ship; True when every sink confirmed everything it was asked to (always True after a clean SIGTERM stop)."""
    from uploader.pipeline import Uploader

    invocation = load_invocation(**options)
    uploader = Uploader(invocation)
    try:
        with stop_on_signals(uploader.stop_requested):
            if invocation.continuous:
                uploader.run_continuous()
                return True
            return uploader.run_once()
    finally:
        uploader.close()

