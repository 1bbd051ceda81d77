"""One line per pydantic error: the key path, the flag or variable that set it, and what is wrong (with bounds
and did-you-mean taken from the models)."""
from __future__ import annotations

from typing import Any

from pydantic_core import ErrorDetails

from fleetcore.models import model_at
from sensor_manager.config.models import Config
from sensor_manager.config.problems import _did_you_mean, _format_path


def _field_bounds(loc: tuple) -> str | None:
    owner = model_at(Config, loc[:-1])
    if owner is None or loc[-1] not in owner.model_fields:
        return None
    lower: tuple[str, Any] | None = None
    upper: tuple[str, Any] | None = None
    for meta in owner.model_fields[loc[-1]].metadata:
        for attr, text in (("ge", ">="), ("gt", ">")):
            if getattr(meta, attr, None) is not None:
                lower = (text, getattr(meta, attr))
        for attr, text in (("le", "<="), ("lt", "<")):
            if getattr(meta, attr, None) is not None:
                upper = (text, getattr(meta, attr))
    if lower and upper and lower[0] == ">=" and upper[0] == "<=":
        return f"must be between {lower[1]:,} and {upper[1]:,}".replace(",", "")
    parts = [f"{op} {value}" for op, value in (bound for bound in (lower, upper) if bound)]
    return f"must be {' and '.join(parts)}" if parts else None


def _message(error: ErrorDetails) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    got = error.get("input")
    if kind == "extra_forbidden":
        owner = model_at(Config, loc[:-1])
        names = [n for n in (owner.model_fields if owner else ()) if n not in ("source_path", "selected_cities", "notes")]
        return f"unknown key {loc[-1]!r}{_did_you_mean(str(loc[-1]), names)}"
    if kind in {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}:
        bounds = _field_bounds(loc) or error["msg"]
        return f"{bounds} (got {got!r})"
    if kind == "finite_number":
        return "NaN and infinity are not allowed"
    if kind == "value_error":
        return str(error["ctx"]["error"]) if "ctx" in error else error["msg"]
    shown = repr(got) if not isinstance(got, (dict, list)) else type(got).__name__
    return f"{error['msg']} (got {shown[:80]})"


def _describe(error: ErrorDetails, origins: dict, label: str) -> tuple[str, str, str]:
    """(where, key path, problem) of one pydantic error, naming the flag or variable that set the value."""
    loc = tuple(error["loc"])
    # Literal-keyed dicts report the bad key as a trailing '[key]' element.
    if loc and loc[-1] == "[key]":
        loc = loc[:-1]
    for length in range(len(loc), 0, -1):
        origin = origins.get(loc[:length])
        if origin:
            if origin.startswith("--"):
                return origin, "", _message(error)
            return origin, _format_path(loc), _message(error)
    return label, _format_path(loc), _message(error)
