"""The `swarm:` section of the project config: where cities run and what the nodes share.

Every field has a default: without a `swarm:` section a city runs on the nodes labelled for it
(`nodes label NODE --city C`), the image is the local content tag, and the lake is node-local.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SwarmSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=True)

    placement: dict[str, str] = Field(
        default_factory=dict,
        description="city -> node hostname it runs on (instead of the node label io.sensor-manager.city.<City>=true)",
    )
    registry: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$",
        description="registry the nodes pull the image from (the one `build --push --registry R` pushed to); default: the local tag",
    )
    shared_lake: bool = Field(
        False, description="the project's lake/ and archive/ are one shared mount on every node (else a lake-only fleet is refused)",
    )
