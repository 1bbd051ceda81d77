"""`inject anomaly`: start an anomaly episode now on chosen sensors, labelled like any other anomaly.

A request is appended to `injections.json` in the simulators' live directory (live/settings.py);
running simulators poll it, start the episode with their next reading (readings generated ahead are
dropped) and list the request's id in their status file. Requests whose episode is over are dropped
from the file when the next one is written.
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict
from pathlib import Path

from fleetcore.atomicfiles import write_atomic
from fleetcore.errors import UsageError
from sensor_manager.layout import ProjectLayout
from sensor_manager.live.settings import live_dir
from sensor_manager.plan import load_plan, select_sensors
from sensor_manager.simulator.live import INJECTABLE_TYPES, INJECTIONS_FILE, Injection, parse_injections

MAX_DURATION_SECONDS = 86_400
POLL_SECONDS = 0.2


def injections_path(layout: ProjectLayout, runtime: str) -> Path:
    return live_dir(layout, runtime) / INJECTIONS_FILE


def request_injection(layout: ProjectLayout, runtime: str, *, kind: str, duration_seconds: float,
                      sensor_ids: list[str] | None = None, cities: list[str] | None = None) -> Injection:
    """Validate and write the request; returns it (its id is what simulators report)."""
    if kind not in INJECTABLE_TYPES:
        raise UsageError(f"--type {kind!r}: one of {', '.join(INJECTABLE_TYPES)}")
    if not 0 < duration_seconds <= MAX_DURATION_SECONDS:
        raise UsageError(f"--duration {duration_seconds:g} s: give a duration above 0 and at most 24h")
    if not sensor_ids and not cities:
        raise UsageError("inject anomaly: name the sensors with --sensor-id or --city")
    plan = load_plan(layout)
    if plan is None:
        raise UsageError(f"no plan yet ({layout.plan_file}); run `start` first")
    targets = select_sensors(plan, [*(cities or ()), *(sensor_ids or ())]).sensors
    injection = Injection(id=uuid.uuid4().hex[:12], sensor_ids=tuple(s.sensor_id for s in targets),
                          type=INJECTABLE_TYPES[kind], duration_seconds=duration_seconds, requested_at_epoch=time.time())
    path = injections_path(layout, runtime)
    kept = [i for i in _read(path) if not i.is_over]
    document = {"schema_version": 1, "injections": [asdict(i) for i in (*kept, injection)]}
    write_atomic(path, json.dumps(document, indent=2) + "\n", mode=0o644)
    return injection


def _read(path: Path) -> list[Injection]:
    try:
        return parse_injections(path.read_bytes())
    except OSError:
        return []


def pending_services(runtime, injection: Injection) -> list[str]:
    """Running simulators hosting a target sensor that do not report the injection yet."""
    targets = set(injection.sensor_ids)
    pending = []
    for service in runtime.status():
        if service.role != "sensor" or service.state != "running" or not targets & set(service.sensors):
            continue
        status = service.detail.get("status")
        if status is None or injection.id not in status.injections:
            pending.append(service.name)
    return pending


def wait_injected(runtime, injection: Injection, timeout_seconds: float) -> list[str]:
    deadline = time.monotonic() + timeout_seconds
    while True:
        pending = pending_services(runtime, injection)
        if not pending or time.monotonic() >= deadline:
            return pending
        time.sleep(POLL_SECONDS)
