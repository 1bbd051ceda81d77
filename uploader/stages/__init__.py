"""Stages turn source rows into what a sink receives; each returns the rows kept plus the rows rejected with a reason."""
from __future__ import annotations

from uploader.stages.raw import RawStage

STAGES = {"raw": RawStage}


def stage_named(name: str):
    """The stage for a config value; stages other than raw are later work and fall back to raw's rules."""
    return STAGES.get(name, RawStage)()
