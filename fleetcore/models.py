"""The base of every configuration model."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown keys are errors; NaN and infinity are rejected everywhere."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=True)
