"""Command targets (`start/stop/restart/logs SERVICE|CITY|SENSOR_ID…`) resolved to service names.

A target is a service name (`uploader-berlin`), a city (display name, safe name or slug, any case:
every service of that city), or a sensor id (the service hosting it). Unknown targets are a usage
error naming what exists.
"""
from __future__ import annotations

import difflib
from typing import Sequence

from fleetcore.errors import UsageError
from fleetcore.naming import city_service_slug
from sensor_manager.runtimes.base import Service


def _city_keys(services: Sequence[Service]) -> dict[str, set[str]]:
    """Every spelling of each city (display name, safe name, slug), case-folded, by safe name."""
    keys: dict[str, set[str]] = {}
    for service in services:
        spellings = keys.setdefault(service.safe_city, {service.safe_city.casefold(), city_service_slug(service.safe_city)})
        spellings.update(sensor.city.casefold() for sensor in service.sensors)
    return keys


def resolve_targets(services: Sequence[Service], targets: Sequence[str] | None) -> list[str] | None:
    """Names of the services the targets select, in plan order; None (= all) when there are no targets."""
    if not targets:
        return None
    cities = _city_keys(services)
    chosen: set[str] = set()
    for target in targets:
        key = target.strip().casefold()
        matches = {
            s.name
            for s in services
            if key == s.name.casefold() or key in cities[s.safe_city] or key in {i.casefold() for i in s.sensor_ids}
        }
        if not matches:
            raise UsageError(_unknown_message(target, services))
        chosen |= matches
    return [s.name for s in services if s.name in chosen]


def _unknown_message(target: str, services: Sequence[Service]) -> str:
    names = [s.name for s in services]
    close = difflib.get_close_matches(target.lower(), names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    shown = ", ".join(names[:8]) + (f", … ({len(names)} in all)" if len(names) > 8 else "")
    return f"unknown service, city or sensor {target!r}.{hint} Services: {shown or '(none planned)'}"
