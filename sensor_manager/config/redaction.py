"""Secrets in config data: which keys hold them, and a copy of the data with their values hidden."""
from __future__ import annotations

from typing import Any, Mapping

_SECRET_WORDS = ("password", "secret", "token", "access_key", "connection_string", "credential")
REDACTED = "***"


def is_secret_key(name: str) -> bool:
    lowered = name.lower()
    return lowered == "key" or lowered.endswith(("_secret", "api_key", "account_key")) or any(
        word in lowered for word in _SECRET_WORDS
    )


def redact(value: Any) -> Any:
    """The one redaction helper: a copy of `value` with every secret-named entry's value replaced by `***`."""
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if is_secret_key(str(k)) and v not in (None, "") else redact(v)) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value
