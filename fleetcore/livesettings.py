"""What every service reports about the live settings file it polls (hot reload): applied or rejected, by digest.

A service's status file carries `applied_settings: {"digest", "at"}` (the file it runs with) and
`rejected_settings: null | {"digest", "errors", "at"}` (the last file it refused, while it is still
the current one). The digest is the first 16 hex of SHA-256 over the file's bytes as read, so a
writer knows a service took its change by comparing digests; `set` waits on exactly that.
"""
from __future__ import annotations

import hashlib

from pydantic import BaseModel, Field

from fleetcore.statusfiles import StatusDocument


def settings_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


class AppliedSettings(BaseModel):
    digest: str
    at: str


class RejectedSettings(BaseModel):
    digest: str
    errors: list[str] = Field(default_factory=list)
    at: str


class LiveSettingsReport(StatusDocument):
    """Only the live-settings fields of any service's status file (its own model holds the rest)."""

    applied_settings: AppliedSettings | None = None
    rejected_settings: RejectedSettings | None = None
