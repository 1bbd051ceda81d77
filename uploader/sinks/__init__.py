"""Sinks by config name. Adding one: a module, an entry here, and a green run of the sink contract suite."""
from __future__ import annotations

from typing import Callable

from uploader.sinks.base import Sink


def _delta(**kwargs) -> Sink:
    from uploader.sinks.delta import DeltaSink

    return DeltaSink(**kwargs)


SINKS: dict[str, Callable[..., Sink]] = {"delta": _delta}
