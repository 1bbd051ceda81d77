"""What the page receives: the monitor's snapshot, with per-sensor rows folded so 1,000 sensors stay small.

A tick is `Snapshot.to_json()` (the document `monitor --json` prints) with its `sensors` list replaced
by one character per sensor in plan order (`sensor_states`) and the active anomalies by sensor id; the
page gets ids and coordinates once from `/api/sensors`. The chart of one sensor is read on request.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from fleetcore.errors import UsageError
from sensor_manager.layout import ProjectLayout
from sensor_manager.observe.monitor import SensorRow, Snapshot
from sensor_manager.observe.query import reading_source
from sensor_manager.observe.readings import METRICS, Filters
from sensor_manager.plan import FleetPlan

CHART_WINDOW = timedelta(minutes=5)
CHART_LIMIT = 3000  # readings: 5 minutes at 10 readings/s
STATES = {"ok": "o", "anomaly": "a", "stale": "s"}


def sensor_state(row: SensorRow) -> str:
    """ok | anomaly (running inside an anomaly episode) | stale (not running: stopped, failed, no fresh status)."""
    if row.state != "running":
        return "stale"
    return "anomaly" if row.active_anomaly else "ok"


def tick(snapshot: Snapshot) -> dict[str, Any]:
    document = snapshot.to_json()
    del document["sensors"]
    document["sensor_states"] = "".join(STATES[sensor_state(s)] for s in snapshot.sensors)
    document["anomalies"] = {s.sensor_id: s.active_anomaly for s in snapshot.sensors if s.active_anomaly and s.state == "running"}
    return document


def sensors(snapshot: Snapshot, plan: FleetPlan | None) -> dict[str, Any]:
    """Ids, cities and coordinates in the order of `sensor_states` (no coordinates without a plan)."""
    planned = {s.sensor_id: s for s in plan.sensors} if plan else {}
    listed = []
    for row in snapshot.sensors:
        place = planned.get(row.sensor_id)
        listed.append({"sensor_id": row.sensor_id, "city": row.city, "latitude": place.latitude if place else None,
                       "longitude": place.longitude if place else None})
    return {"sensors": listed}


def chart(layout: ProjectLayout, plan: FleetPlan | None, sensor_id: str, now: datetime | None = None) -> dict[str, Any]:
    """The sensor's last 5 minutes as columns: epoch seconds, the five metrics, the anomaly type (or null)."""
    if plan is not None and sensor_id not in {s.sensor_id for s in plan.sensors}:
        raise UsageError(f"sensor {sensor_id!r}: not in this project's plan")
    if plan is not None and not (layout.root / plan.sensor(sensor_id).db_path).exists():
        return {"sensor_id": sensor_id, "columns": {"t": [], **{m: [] for m in METRICS}, "anomaly": []}}  # planned, not started
    since = (now or datetime.now(timezone.utc)) - CHART_WINDOW
    rows = reading_source(layout, plan, "edge").readings(Filters(sensor_id=sensor_id, since=since), CHART_LIMIT).rows
    columns: dict[str, list] = {"t": [datetime.fromisoformat(str(r["timestamp"])).timestamp() for r in rows]}
    for metric in METRICS:
        columns[metric] = [r[metric] for r in rows]
    columns["anomaly"] = [r["anomaly_type"] if r["anomaly_flag"] else None for r in rows]
    return {"sensor_id": sensor_id, "columns": columns}
