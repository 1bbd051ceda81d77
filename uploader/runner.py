"""Run an uploader from options: load config, resolve the invocation, run once or continuously.

The one library entry point behind `python -m uploader` and `./sensor_manager.py upload`.
SIGTERM (and SIGINT) finish the batch in flight, record progress and return normally.
"""
from __future__ import annotations

import signal
import threading
from pathlib import Path

from uploader.invocation import Invocation, resolve_invocation
from uploader.locks import UploaderBusyError
from uploader.status_file import check_health


def load_invocation(*, sqlite: Path, config: Path | None = None, project_dir: Path | None = None, **options) -> Invocation:
    from sensor_manager.config import load_config

    loaded = load_config(config, project_dir)
    return resolve_invocation(sqlite=sqlite, settings=loaded.uploader, config_project=loaded.project,
                              project_dir=project_dir, config_path=config, **options)


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
    restore = _stop_on_signals(uploader.stop_requested)
    try:
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
        restore()


def _stop_on_signals(event: threading.Event):
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, lambda *_: event.set())

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore
