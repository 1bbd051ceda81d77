"""Run an uploader from options: take its settings, resolve the invocation, run once or continuously.

The one library entry point behind `python -m uploader` and `./sensor_manager.py upload`.
SIGTERM (and SIGINT) finish the batch in flight, record progress and return normally.
"""
from __future__ import annotations

from pathlib import Path

from fleetcore.errors import ConfigError
from fleetcore.livesettings import settings_digest
from fleetcore.signals import stop_on_signals
from uploader.invocation import Invocation, resolve_invocation
from uploader.locks import UploaderBusyError
from uploader.settings import UploaderSettings, parse_settings
from uploader.status_file import check_health


def load_invocation(*, sqlite: Path, settings: UploaderSettings | None = None, project: str | None = None,
                    config: Path | None = None, project_dir: Path | None = None, **options) -> Invocation:
    """Settings come from the caller (sensor-manager's `upload`), else from the resolved file `config`, else defaults."""
    digest = None
    if settings is None and config is not None:
        try:
            data = config.read_bytes()
        except OSError as exc:
            raise ConfigError(f"--config {config}: cannot read it ({exc})") from exc
        settings, project = parse_settings(data, config)
        digest = settings_digest(data)
    return resolve_invocation(sqlite=sqlite, settings=settings or UploaderSettings(), config_project=project,
                              project_dir=project_dir, config_path=config, settings_digest=digest, **options)


def check(**options) -> tuple[bool, str]:
    """The container healthcheck: the status file is fresh and no sink is failing permanently."""
    return check_health(load_invocation(**options).status_path)


def upload(**options) -> bool:
    """Ship; True when every sink confirmed everything it was asked to (always True after a clean SIGTERM stop).

    Raises UploaderBusyError (exit 1) when another running uploader has this uploader's id (nothing is
    touched, its status file included) or, in --once mode, holds sources this run was asked to ship."""
    from uploader.pipeline import Uploader

    invocation = load_invocation(**options)
    uploader = Uploader(invocation)
    try:
        with stop_on_signals(uploader.stop_requested):
            if invocation.continuous:
                uploader.run_continuous()
                return True
            ok = uploader.run_once()
            busy = uploader.sources_locked_elsewhere()
            if busy:
                found = len(busy) + len(uploader.tracked) + len(uploader.retiring)
                raise UploaderBusyError(
                    f"{len(busy)} of {found} sources are being shipped by another running uploader (the fleet's?), so this "
                    f"run did not ship them (first: {busy[0]}). That uploader ships them; to ship from here instead, stop "
                    "the fleet first (`stop`).")
            return ok
    finally:
        uploader.close()

