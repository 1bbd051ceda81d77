"""The monitor's tables: one row per city, or one row per sensor of a city (rich renderables; nothing is printed here)."""
from __future__ import annotations

from datetime import datetime, timezone

from rich import filesize
from rich.console import Group
from rich.table import Table
from rich.text import Text

from sensor_manager.observe.monitor import CityRow, SensorRow, Snapshot

SPARKS = "▁▂▃▄▅▆▇█"
STATE_STYLES = {"running": "green", "idle": "green", "starting": "yellow", "restarting": "yellow", "failing": "red", "crashloop": "bold red", "stopped": "dim"}


def sparkline(values: list[float], width: int = 12) -> str:
    """The last `width` values as block characters scaled to their own maximum."""
    values = values[-width:]
    top = max(values, default=0)
    if top <= 0:
        return SPARKS[0] * len(values)
    return "".join(SPARKS[min(len(SPARKS) - 1, int(v / top * (len(SPARKS) - 1) + 0.5))] for v in values)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(max(0, seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 172800:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d"


def _state(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, ""))


def city_table(cities: list[CityRow]) -> Table:
    table = Table("CITY", "SENSORS", "READINGS/S", "LAST 10 S", "ROWS", "ANOMALIES", "UPLOADER", "LAG ROWS", "LAG AGE",
                  "LAST UPLOAD", "DEAD", "ERR/RESTARTS", header_style="bold")
    for c in cities:
        table.add_row(
            c.display_name, f"{c.sensors_running}/{c.sensors_total}", f"{c.readings_per_second:.1f}", sparkline(c.rate_history),
            f"{c.rows:,}", str(c.anomalies), _state(c.uploader_state), f"{c.lag_rows:,}", duration(c.lag_seconds),
            f"{duration(c.last_upload_age_seconds)} ago" if c.last_upload_age_seconds is not None else "never",
            str(c.dead_lettered), f"{c.errors}/{c.restarts}",
        )
    return table


def sensor_table(sensors: list[SensorRow]) -> Table:
    table = Table("SENSOR", "STATE", "ROWS", "LAST TIMESTAMP", "READINGS/S", "ANOMALY", "DB+WAL", header_style="bold")
    for s in sensors:
        table.add_row(s.sensor_id, _state(s.state), f"{s.rows:,}", s.last_timestamp or "-", f"{s.readings_per_second:.1f}",
                      s.active_anomaly or "-", f"{filesize.decimal(s.db_bytes)} + {filesize.decimal(s.wal_bytes)}")
    return table


def service_lines(cities: list[CityRow]) -> list[Text]:
    """One line per sink that reports service figures (Cosmos DB): its lag, request units and throttling."""
    totals: dict[str, dict[str, float]] = {}
    for c in cities:
        for name, sink in c.sinks.items():
            if sink.get("request_units") is None:
                continue
            total = totals.setdefault(name, {"lag_rows": 0, "request_units": 0.0, "request_units_per_second": 0.0, "throttled": 0})
            for key in total:
                total[key] += sink.get(key) or 0
    return [Text(f"{name}: lag {t['lag_rows']:,.0f} rows  {t['request_units']:,.1f} RU ({t['request_units_per_second']:,.1f} RU/s)"
                 f"  throttled {t['throttled']:,.0f}") for name, t in sorted(totals.items())]


def render(snapshot: Snapshot, city: str | None = None) -> Group:
    """The whole screen: a header line, then the city table or (with `city`) that city's sensors."""
    taken = datetime.fromtimestamp(snapshot.taken_at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    running = sum(c.sensors_running for c in snapshot.cities)
    total = sum(c.sensors_total for c in snapshot.cities)
    rate = sum(c.readings_per_second for c in snapshot.cities)
    header = Text(f"{snapshot.project or 'sensor-manager'}  {taken}  sensors {running}/{total}  {rate:.1f} readings/s", style="bold")
    if city is None:
        return Group(header, city_table(snapshot.cities), *service_lines(snapshot.cities))
    shown = [c for c in snapshot.cities if c.city == city]
    return Group(header, city_table(shown), *service_lines(shown), sensor_table([s for s in snapshot.sensors if s.city == city]))
