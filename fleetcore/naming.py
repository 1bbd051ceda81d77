"""Names derived from user input: safe city names, service slugs and sensor codes."""
from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Iterator

CODE_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
CODE_MIN_LENGTH = 4
CODE_MAX_LENGTH = 8
CODE_PATTERN = re.compile(rf"[A-Z0-9]{{{CODE_MIN_LENGTH},{CODE_MAX_LENGTH}}}")
PUNYCODE_PREFIX = "xn_"  # safe names of cities written without Latin letters (IDNA's xn--)
SENSOR_ID_PATTERN = re.compile(rf"([A-Za-z0-9]+(?:_[A-Za-z0-9]+)*)_({CODE_PATTERN.pattern})")


def safe_city_name(display_name: str) -> str:
    """ASCII letters, digits and `_`, transliterated: "São Paulo" -> "Sao_Paulo".

    A name with no Latin letters or digits at all ("東京") gets the Punycode of its case-folded letters
    and digits after `xn_`, as in IDNA ("xn_1lqs71d"): deterministic, reversible, and never empty.
    """
    safe = _word_characters(unicodedata.normalize("NFKD", display_name).encode("ascii", "ignore").decode("ascii"))
    if safe:
        return safe
    letters = "".join(ch for ch in unicodedata.normalize("NFKC", display_name).casefold() if ch.isalnum())
    return _word_characters(PUNYCODE_PREFIX + letters.encode("punycode").decode("ascii")) if letters else ""


def _word_characters(ascii_name: str) -> str:
    return re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9]+", "_", ascii_name)).strip("_")


def city_service_slug(safe_name: str) -> str:
    """Service-name form of a safe city name: "Sao_Paulo" -> "sao-paulo"."""
    return safe_name.lower().replace("_", "-")


def city_name_problem(display_name: str) -> str | None:
    """Why a city display name cannot be used (it would escape the data directory or is empty), or None."""
    if "\x00" in display_name:
        return "contains a NUL character"
    if "/" in display_name or "\\" in display_name:
        return "contains a path separator"
    if ".." in display_name:
        return "contains '..'"
    if display_name.strip() != display_name:
        return "has leading or trailing whitespace"
    if any(unicodedata.category(ch).startswith("C") for ch in display_name):
        return "contains a control character"
    if not safe_city_name(display_name):
        return "has no letters or digits to build a directory name from"
    return None


def city_clash_key(display_name: str) -> str:
    """What two city names are compared by for a clash: their safe name, case-folded (file systems may fold case)."""
    return safe_city_name(display_name).casefold()


def _digest(*parts: object) -> bytes:
    # Stable across machines and runs (unlike hash()): SHA-256 of the parts joined by NUL.
    return hashlib.sha256("\x00".join(str(p) for p in parts).encode("utf-8")).digest()


def stable_int(*parts: object, bits: int = 63) -> int:
    """A non-negative integer derived only from `parts` (the same on every machine)."""
    return int.from_bytes(_digest("int", *parts), "big") >> (256 - bits)


def _base36(number: int, length: int) -> str:
    chars = []
    for _ in range(length):
        number, digit = divmod(number, 36)
        chars.append(CODE_ALPHABET[digit])
    return "".join(chars)


def code_candidates(seed: int, safe_city: str, index: int) -> Iterator[str]:
    """Codes a sensor may take, in order of preference: 4 characters, then longer, then salted.

    The first candidate not already taken in the fleet becomes the sensor's code, so a collision only
    lengthens the later sensor's code and never renames an earlier one.
    """
    salt = 0
    while True:
        number = int.from_bytes(_digest("code", seed, safe_city, index, salt), "big")
        for length in range(CODE_MIN_LENGTH, CODE_MAX_LENGTH + 1):
            yield _base36(number, length)
        salt += 1


def is_valid_code(code: str) -> bool:
    return CODE_PATTERN.fullmatch(code) is not None
