"""`query --source edge` inside the uploader containers, for when the host may not open live DBs (Docker Desktop).

Each city's uploader container mounts that city's data read-only at `/project/data/<City>` and has the
package installed, so the same query runs there: `python -m sensor_manager query --project-dir /project
... --format json` through the docker SDK's `exec_run`, with every filter passed as its own argv element
(no shell; inside, each is still a bound SQL parameter). The per-city JSON results are merged here the way
the host-side query merges per-DB results. The container sees no plan, so cities are chosen here from the
plan and display names are put back from it.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fleetcore.errors import SensorManagerError, UsageError
from fleetcore.naming import city_service_slug
from sensor_manager.layout import ProjectLayout
from sensor_manager.observe.edge import EdgeDatabase, edge_databases
from sensor_manager.observe.edge_source import matches
from sensor_manager.observe.readings import (
    LIST_COLUMNS,
    READING_COLUMNS,
    DatabaseReport,
    Filters,
    QueryResult,
    newest_first,
)
from sensor_manager.plan import FleetPlan

CONTAINER_PROJECT_DIR = "/project"
MAX_PARALLEL_EXECS = 8


def compose_project_name(layout: ProjectLayout) -> str:
    """The compose project (or swarm stack) of this project dir, as the last render recorded it."""
    from sensor_manager.runtimes import recorded_runtime
    from sensor_manager.runtimes.compose import ComposeRuntime

    if recorded_runtime(layout) == "swarm":
        from sensor_manager.runtimes.swarm import SwarmRuntime

        return SwarmRuntime(layout).project_name
    return ComposeRuntime(layout).project_name


def _filter_args(filters: Filters) -> list[str]:
    args = []
    if filters.sensor_id is not None:
        args += ["--sensor-id", filters.sensor_id]
    if filters.since is not None:
        args += ["--since", filters.since.isoformat()]  # resolved once on the host: every city uses the same instant
    return args


def _uploader_container(client, project: str, safe_city: str):
    from sensor_manager.runtimes.compose_render import CITY_LABEL, PROJECT_LABEL, ROLE_LABEL

    found = client.containers.list(filters={"label": [f"{PROJECT_LABEL}={project}", f"{ROLE_LABEL}=uploader", f"{CITY_LABEL}={safe_city}"],
                                            "status": "running"})
    found = [c for c in found if c.labels.get("com.docker.compose.oneoff") != "True"]
    if not found:
        service = f"uploader-{city_service_slug(safe_city)}"
        raise SensorManagerError(
            f"{service} is not running: with container edge reads (Docker Desktop) the edge DBs are queried inside it; "
            f"start it (./sensor_manager.py start {service}) or use --source lake"
        )
    return found[0]


def run_in_uploaders(layout: ProjectLayout, plan: FleetPlan | None, filters: Filters, mode_args: list[str]) -> list[tuple[list[EdgeDatabase], dict[str, Any]]]:
    """Run `query <filters> <mode_args> --format json` in the uploader container of every city the filters match.

    Returns (the city's matching DBs, its JSON document) per city, in plan order.
    """
    from sensor_manager.runtimes.engine import docker_client

    by_city: dict[str, list[EdgeDatabase]] = {}
    for db in edge_databases(layout, plan):
        if not matches(db, filters):
            continue
        by_city.setdefault(db.safe_city, []).append(db)
    if not by_city:
        return []
    client = docker_client()
    project = compose_project_name(layout)
    argv_tail = [*_filter_args(filters), *mode_args, "--format", "json"]

    def one(safe_city: str) -> dict[str, Any]:
        container = _uploader_container(client, project, safe_city)
        argv = ["python", "-m", "sensor_manager", "query", "--project-dir", CONTAINER_PROJECT_DIR, "--source", "edge", *argv_tail]
        exit_code, (stdout, stderr) = container.exec_run(argv, demux=True)
        label = f"uploader-{city_service_slug(safe_city)} ({container.name})"
        if exit_code != 0:
            text = (stderr or stdout or b"").decode("utf-8", "replace").strip()
            errors = [line.removeprefix("error: ") for line in text.splitlines() if line.startswith("error: ")]
            message = errors[-1] if errors else (text.splitlines() or [f"exit {exit_code}"])[-1]
            raise (UsageError if exit_code == 2 else SensorManagerError)(f"query inside {label}: {message}")
        try:
            return json.loads(stdout or b"")
        except ValueError:
            raise SensorManagerError(f"query inside {label}: the output is not JSON") from None

    cities = list(by_city)
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_EXECS, len(cities))) as pool:
        documents = list(pool.map(one, cities))
    return [(by_city[slug], document) for slug, document in zip(cities, documents, strict=True)]


def _display_names(results: list[tuple[list[EdgeDatabase], dict[str, Any]]]) -> dict[str, str]:
    return {db.sensor_id: db.city for dbs, _ in results for db in dbs}


def _wanted(results) -> set[str]:
    return {db.sensor_id for dbs, _ in results for db in dbs}


def _rows(results, wanted: set[str]) -> list[dict[str, Any]]:
    """Rows of the sensors the plan selected (a container holds its whole city; the filters already bound the rest)."""
    return [row for dbs, document in results for row in document.get("rows", []) if not wanted or row.get("sensor_id") in wanted]


@dataclass(frozen=True)
class ContainerEdgeSource:
    """The edge DBs read inside each city's uploader container; per-city JSON merged as the host merges per-DB rows."""

    layout: ProjectLayout
    plan: FleetPlan | None
    name: str = "edge"

    def _run(self, filters: Filters, mode_args: list[str]):
        return run_in_uploaders(self.layout, self.plan, filters, mode_args)

    def readings(self, filters: Filters, limit: int, columns: tuple[str, ...] = READING_COLUMNS) -> QueryResult:
        results = self._run(filters, ["--limit", str(limit)])
        rows = newest_first(_rows(results, _wanted(results)))[:limit]
        if tuple(columns) != READING_COLUMNS:
            rows = [{c: row.get(c) for c in columns} for row in rows]
        return QueryResult(list(columns), list(reversed(rows)))

    def latest(self, filters: Filters) -> QueryResult:
        results = self._run(filters, ["--latest"])
        return QueryResult(list(READING_COLUMNS), sorted(_rows(results, _wanted(results)), key=lambda r: r.get("sensor_id") or ""))

    def count(self, filters: Filters) -> QueryResult:
        results = self._run(filters, ["--count"])
        return QueryResult(["count"], [{"count": sum(int(row.get("count") or 0) for _, doc in results for row in doc.get("rows", []))}])

    def list_sensors(self, filters: Filters) -> QueryResult:
        results = self._run(filters, ["--list"])
        names = _display_names(results)
        rows = [row | {"city": names.get(row.get("sensor_id", ""), row.get("city"))} for row in _rows(results, set(names))]
        columns = (results[0][1].get("columns") if results else None) or list(LIST_COLUMNS)
        return QueryResult(list(columns), rows)

    def report(self, filters: Filters) -> list[DatabaseReport]:
        results = self._run(filters, ["--all"])
        names = _display_names(results)
        reports = []
        fields = set(DatabaseReport.__dataclass_fields__) - {"extra"}
        for _, document in results:
            for entry in document.get("databases", []):
                if entry.get("sensor_id") not in names:
                    continue
                known = {k: v for k, v in entry.items() if k in fields}
                known["city"] = names[entry["sensor_id"]]
                reports.append(DatabaseReport(**known, extra={k: v for k, v in entry.items() if k not in fields}))
        return reports
