"""Firmware rollouts: change the firmware of chosen sensors in the stored plan; running sensors follow.

The plan is the one source of identity, so a rollout is a plan change: the chosen sensors' entries
get the new `firmware_version`, and `rollouts` (in `state/plan.json`) records the change. Running
simulators poll the plan (simulator/live.py) and write their next row with the new identity; each
reports in its status from which seq (`identity_since_seq`), and that seq and time are recorded in
the rollout (`record_switches`, by `rollout firmware` while it waits and by `rollout status`).
A sensor that is stopped switches when it next starts. The anomaly behaviour follows the device
modifier table (`devices.modifiers`, matched by `anomalies.variant_keys`).

Selection is deterministic: candidates (all, `--cities`, `--sensor-id`) ordered by a hash of (fleet
seed, target version, sensor id), the first `percent` of them (rounded up) taken.
"""
from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any

from fleetcore.errors import UsageError
from fleetcore.naming import stable_int
from fleetcore.statusfiles import utc_now_iso
from sensor_manager.layout import ProjectLayout
from sensor_manager.plan import FleetPlan, PlannedSensor, load_plan, save_plan, select_sensors

POLL_SECONDS = 0.2
_VERSION_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-+_")


def _stored(layout: ProjectLayout) -> FleetPlan:
    plan = load_plan(layout)
    if plan is None:
        raise UsageError(f"no plan yet ({layout.plan_file}); run `start` first")
    return plan


def _save(layout: ProjectLayout, plan: FleetPlan) -> None:
    """Store the plan; containers read a copy of it, rewritten here."""
    from sensor_manager.runtimes import recorded_runtime

    save_plan(layout, plan)
    if recorded_runtime(layout) == "docker":
        from sensor_manager.runtimes.compose_render import write_role_plans

        write_role_plans(layout, plan)


def choose_sensors(plan: FleetPlan, version: str, *, cities: list[str] | None = None, percent: float = 100.0,
                   sensor_ids: list[str] | None = None) -> list[PlannedSensor]:
    """The sensors a rollout to `version` switches, in plan order (see the module doc)."""
    if not 0 < percent <= 100:
        raise UsageError(f"--percent {percent:g}: give a share of the fleet in (0, 100]")
    candidates = select_sensors(plan, cities).sensors if cities else plan.sensors
    if sensor_ids:
        known = {s.sensor_id for s in candidates}
        unknown = [i for i in sensor_ids if i not in known]
        if unknown:
            raise UsageError(f"--sensor-id {unknown[0]}: not a planned sensor{' of the chosen cities' if cities else ''}; see `plan`")
        candidates = tuple(s for s in candidates if s.sensor_id in set(sensor_ids))
    count = math.ceil(len(candidates) * percent / 100)
    ranked = sorted(candidates, key=lambda s: stable_int("rollout", plan.seed, version, s.sensor_id))
    chosen = {s.sensor_id for s in ranked[:count]}
    return [s for s in candidates if s.sensor_id in chosen]


def _switch(plan: FleetPlan, record: dict[str, Any], firmware: dict[str, str]) -> FleetPlan:
    sensors = tuple(replace(s, firmware_version=firmware[s.sensor_id]) if s.sensor_id in firmware else s
                    for s in plan.sensors)
    return replace(plan, sensors=sensors, rollouts=(*plan.rollouts, record))


def start_rollout(layout: ProjectLayout, version: str, *, cities: list[str] | None = None, percent: float = 100.0,
                  sensor_ids: list[str] | None = None) -> dict[str, Any]:
    """Record a rollout of `version` in the stored plan; returns its record."""
    if not version or len(version) > 32 or not set(version) <= _VERSION_CHARS:
        raise UsageError(f"--to {version!r}: a firmware version is 1-32 of letters, digits and . - + _ (e.g. 1.6.0)")
    plan = _stored(layout)
    chosen = [s for s in choose_sensors(plan, version, cities=cities, percent=percent, sensor_ids=sensor_ids)
              if s.firmware_version != version]
    if not chosen:
        raise UsageError(f"--to {version}: every chosen sensor already runs firmware {version}; nothing changed")
    now = utc_now_iso()
    record = {
        "id": f"rollout-{len(plan.rollouts) + 1}", "kind": "rollout", "firmware_version": version, "requested_at": now,
        "selection": {"cities": cities or [], "percent": percent, "sensor_ids": sensor_ids or []},
        "sensors": {s.sensor_id: {"from": s.firmware_version, "to": version, "seq": None, "at": None} for s in chosen},
    }
    _save(layout, _switch(plan, record, {s.sensor_id: version for s in chosen}))
    return record


def undo_rollout(layout: ProjectLayout) -> dict[str, Any]:
    """Give the sensors of the last rollout not undone yet their firmware from before it."""
    plan = _stored(layout)
    undone = {r.get("undoes") for r in plan.rollouts}
    last = next((r for r in reversed(plan.rollouts) if r.get("kind") == "rollout" and r["id"] not in undone), None)
    if last is None:
        raise UsageError("no rollout to undo; see `rollout status`")
    current = {s.sensor_id: s.firmware_version for s in plan.sensors}
    back = {sid: entry["from"] for sid, entry in last["sensors"].items() if sid in current}
    record = {
        "id": f"rollout-{len(plan.rollouts) + 1}", "kind": "undo", "undoes": last["id"], "requested_at": utc_now_iso(),
        "sensors": {sid: {"from": current[sid], "to": old, "seq": None, "at": None} for sid, old in back.items()},
    }
    _save(layout, _switch(plan, record, back))
    return record


def _reported(runtime) -> dict[str, Any]:
    """sensor_id -> its entry in a running simulator's status file."""
    entries: dict[str, Any] = {}
    for service in runtime.status():
        status = service.detail.get("status")
        if service.role == "sensor" and status is not None and service.state == "running":
            entries.update(status.sensors)
    return entries


def record_switches(layout: ProjectLayout, runtime) -> FleetPlan:
    """Fill in the seq and time of switches the simulators report, in each sensor's latest rollout."""
    plan = _stored(layout)
    reported = _reported(runtime)
    latest: dict[str, int] = {}
    for index, record in enumerate(plan.rollouts):
        for sensor_id in record["sensors"]:
            latest[sensor_id] = index
    records = [dict(r, sensors={k: dict(v) for k, v in r["sensors"].items()}) for r in plan.rollouts]
    changed = False
    for sensor_id, index in latest.items():
        entry = records[index]["sensors"][sensor_id]
        status = reported.get(sensor_id)
        if entry["seq"] is not None or status is None:
            continue
        if status.firmware_version == entry["to"] and status.identity_since_seq is not None:
            entry["seq"], entry["at"] = status.identity_since_seq, status.identity_since or utc_now_iso()
            changed = True
    if not changed:
        return plan
    plan = replace(plan, rollouts=tuple(records))
    _save(layout, plan)
    return plan


def pending_switches(record: dict[str, Any]) -> list[str]:
    return [sid for sid, entry in record["sensors"].items() if entry["seq"] is None]


def wait_switched(layout: ProjectLayout, runtime, rollout_id: str, timeout_seconds: float) -> dict[str, Any]:
    """Record switches until every running sensor of the rollout switched (or the timeout); the record then."""
    deadline = time.monotonic() + timeout_seconds
    running = set(_reported(runtime))
    while True:
        plan = record_switches(layout, runtime)
        record = next(r for r in plan.rollouts if r["id"] == rollout_id)
        if not set(pending_switches(record)) & running or time.monotonic() >= deadline:
            return record
        time.sleep(POLL_SECONDS)


def rollout_summary(record: dict[str, Any]) -> str:
    sensors = record["sensors"]
    switched = len(sensors) - len(pending_switches(record))
    what = f"firmware {record['firmware_version']}" if record["kind"] == "rollout" else f"undo of {record['undoes']}"
    return f"{record['id']}: {what}, requested {record['requested_at']}: {switched}/{len(sensors)} sensors switched"
