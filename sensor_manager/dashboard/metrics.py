"""Prometheus exposition of a fleet (`GET /metrics`, `metrics`), named after Vector's component metrics.

Every series carries `component_id` (the service), `component_kind` (source | sink), `component_type`
(sqlite, delta, …) and `city`. Counters are derived from what is persisted, never from a process's
in-memory counts, so they do not go down when a service restarts:
- received (source sqlite) = Σ over the city's sources of the furthest position any sink holds;
- sent (sink) = Σ of that sink's positions minus its dead-lettered rows (the position passes those too);
- discarded / errors{error_type="rejected"} = rows in the dead-letter store (Parquet files);
- sensor_readings_total = the edge DBs' rows (the monitor's figure);
- sensor_anomalies_total = readings flagged with each anomaly type, counted in the edge DBs
  (incrementally: each DB is scanned once, then only its new rows).
Gauges: buffer_size_events (lag rows), source_lag_time_seconds (age of the oldest row not shipped),
sensors_running.
"""
from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import pyarrow.parquet as pq
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from fleetcore.naming import city_service_slug
from sensor_manager.layout import ProjectLayout
from sensor_manager.observe.edge import EdgeDatabase
from sensor_manager.observe.monitor import LAKE_SINK, Snapshot
from sensor_manager.simulator.db import ANOMALY_CODES, open_readonly
from uploader.status_file import UploaderStatus

LABELS = ["component_id", "component_kind", "component_type", "city"]
ANOMALY_NAMES = {code: name for name, code in ANOMALY_CODES.items()}


class AnomalyCounts:
    """Readings per anomaly type per DB, kept between scrapes so each scrape reads only new rows."""

    def __init__(self) -> None:
        self._seen: dict[Path, tuple[str | None, int, Counter]] = {}

    def count(self, db: EdgeDatabase) -> Counter:
        generation, upto, counts = self._seen.get(db.path, (None, 0, Counter()))
        try:
            conn = open_readonly(db.path)
        except sqlite3.Error:
            return counts  # not there yet, or unreadable right now: the last known counts
        try:
            current = conn.execute("SELECT generation FROM sensor_meta LIMIT 1").fetchone()
            current = current[0] if current else None
            if current != generation:
                upto, counts = 0, Counter()
            last = conn.execute("SELECT max(seq) FROM readings").fetchone()[0] or 0
            if last < upto:  # the DB was replaced under the same generation (a move-aside): count again
                upto, counts = 0, Counter()
            counts = counts.copy()
            for code, rows in conn.execute("SELECT anomaly, count(*) FROM readings WHERE seq > ? AND seq <= ? AND anomaly != 0 "
                                           "GROUP BY anomaly", (upto, last)):
                counts[ANOMALY_NAMES.get(code, str(code))] += rows
        except sqlite3.Error:
            return counts
        finally:
            conn.close()
        self._seen[db.path] = (current, last, counts)
        return counts


def dead_letters(layout: ProjectLayout) -> dict[tuple[str, str], int]:
    """(sink, city) -> rows in the dead-letter store; a row's city is the first part of its source path."""
    counts: Counter = Counter()
    if not layout.deadletter.is_dir():
        return {}
    for path in layout.deadletter.glob("*/*.parquet"):
        try:
            sources = pq.read_table(path, columns=["source"]).column("source").to_pylist()
        except (OSError, ValueError):
            continue  # a file being replaced right now; the next scrape counts it
        for source in sources:
            counts[(path.parent.name, str(source).removeprefix("data/").split("/", 1)[0])] += 1
    return dict(counts)


class FleetCollector(Collector):
    """Collects from the latest snapshot, the uploaders' status files and the dead-letter store."""

    def __init__(self, layout: ProjectLayout, snapshot: Snapshot, databases: Iterable[EdgeDatabase] = (), anomalies: AnomalyCounts | None = None):
        self.layout = layout
        self.snapshot = snapshot
        self.databases = list(databases)
        self.anomalies = anomalies

    def collect(self):
        families = _families()
        discarded = dead_letters(self.layout)
        for city in self.snapshot.cities:
            slug = city_service_slug(city.city)
            uploader = f"uploader-{slug}"
            status = UploaderStatus.read(self.layout.status_file("uploader", slug)) or UploaderStatus()
            positions = [s.positions for s in status.sources]
            sinks = sorted(set(status.sinks) | {name for p in positions for name in p} | {LAKE_SINK})
            families["received"].add_metric([uploader, "source", "sqlite", city.city], sum(max(p.values(), default=0) for p in positions))
            families["lag_seconds"].add_metric([uploader, "source", "sqlite", city.city], city.lag_seconds or 0.0)
            for sink in sinks:
                labels = [uploader, "sink", sink, city.city]
                rejected = discarded.get((sink, city.city), 0)
                families["sent"].add_metric(labels, max(0, sum(p.get(sink, 0) for p in positions) - rejected))
                families["discarded"].add_metric([*labels, "false"], rejected)
                families["errors"].add_metric([*labels, "rejected"], rejected)
                lag = city.lag_rows if sink == LAKE_SINK else (status.sinks[sink].lag_rows if sink in status.sinks else 0)
                families["buffer"].add_metric(labels, lag)
            sensor = [f"sensor-{slug}", "source", "sqlite", city.city]
            families["readings"].add_metric(sensor, city.rows)
            families["running"].add_metric(sensor, city.sensors_running)
        if self.anomalies is not None:
            self._anomalies(families["anomalies"], self.anomalies)
        yield from families.values()

    def _anomalies(self, family: CounterMetricFamily, anomalies: AnomalyCounts) -> None:
        per_city: dict[str, Counter] = {}
        for db in self.databases:
            per_city.setdefault(db.safe_city, Counter()).update(anomalies.count(db))
        for city, counts in per_city.items():
            for name in ANOMALY_CODES:
                family.add_metric([f"sensor-{city_service_slug(city)}", "source", "sqlite", city, name], counts.get(name, 0))


def _families() -> dict[str, Any]:
    return {
        "received": CounterMetricFamily("component_received_events", "Rows the uploader read from its SQLite sources and handed to a sink.", labels=LABELS),
        "sent": CounterMetricFamily("component_sent_events", "Rows a sink delivered (its positions, less its dead letters).", labels=LABELS),
        "discarded": CounterMetricFamily("component_discarded_events", "Rows a sink or stage rejected into the dead-letter store.", labels=[*LABELS, "intentional"]),
        "errors": CounterMetricFamily("component_errors", "Errors by type; rejected = rows dead-lettered.", labels=[*LABELS, "error_type"]),
        "buffer": GaugeMetricFamily("buffer_size_events", "Rows written at the edge and not yet delivered by the sink (lag rows).", labels=LABELS),
        "lag_seconds": GaugeMetricFamily("source_lag_time_seconds", "Age of the oldest row not yet shipped.", labels=LABELS),
        "readings": CounterMetricFamily("sensor_readings", "Readings the city's sensors wrote to their edge DBs.", labels=LABELS),
        "anomalies": CounterMetricFamily("sensor_anomalies", "Readings flagged with an anomaly, by type.", labels=[*LABELS, "type"]),
        "running": GaugeMetricFamily("sensors_running", "Sensors running now.", labels=LABELS),
    }


def exposition(layout: ProjectLayout, snapshot: Snapshot, databases: Iterable[EdgeDatabase] = (), anomalies: AnomalyCounts | None = None) -> bytes:
    """The Prometheus text format of the fleet at `snapshot`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(layout, snapshot, databases, anomalies))
    return generate_latest(registry)
