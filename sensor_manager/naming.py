"""Names derived from user input: safe city names, service slugs and sensor codes."""
from __future__ import annotations

import re
import unicodedata


def safe_city_name(display_name: str) -> str:
    """ASCII letters, digits and `_`, transliterated: "São Paulo" -> "Sao_Paulo"."""
    ascii_name = unicodedata.normalize("NFKD", display_name).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9]+", "_", ascii_name)).strip("_")


def city_service_slug(safe_name: str) -> str:
    """Service-name form of a safe city name: "Sao_Paulo" -> "sao-paulo"."""
    return safe_name.lower().replace("_", "-")
