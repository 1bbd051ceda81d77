"""The duration grammar lives in `fleetcore.durations` (the uploader parses window lengths with it too); this name stays for callers."""
from fleetcore.durations import GRAMMAR, MAX_DURATION_DAYS, UNIT_SECONDS, parse_duration, parse_since

__all__ = ["GRAMMAR", "MAX_DURATION_DAYS", "UNIT_SECONDS", "parse_duration", "parse_since"]
