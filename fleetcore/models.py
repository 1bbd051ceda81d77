"""The base of every configuration model, and where in a model tree an error's location points."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown keys are errors; NaN and infinity are rejected everywhere."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=True)


def model_at(root: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model under `root` that owns the last key of the pydantic error location `loc`
    (list indexes skipped), for did-you-mean and bounds messages; None when `loc` leaves the models."""
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        model = _inner_model(model.model_fields[part].annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    """The model an annotation holds (itself, or inside Optional/list/dict/Union), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None
