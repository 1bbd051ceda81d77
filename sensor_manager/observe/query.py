"""`query`: readings from the edge DBs (read-only), the lake, the Parquet archive or the S3 sink's bucket.

`reading_source` picks the one `ReadingSource` (observe/readings.py) for `--source`, once:
- edge: `observe/edge_source.py`, or, when the host may not open live DBs (Docker Desktop,
  `observe/access.py`), `observe/container_query.py`, which runs the same query inside the uploaders;
- lake, archive, s3: `observe/dataset_source.py`, DuckDB over the files that sink wrote.
Free SQL (`--sql`) runs over a dataset source only, in a locked DuckDB connection.
"""
from __future__ import annotations

from fleetcore.errors import UsageError
from sensor_manager.layout import ProjectLayout
from sensor_manager.observe.dataset_source import DatasetSource, archive_source, lake_source, s3_source
from sensor_manager.observe.readings import ReadingSource
from sensor_manager.plan import FleetPlan

SOURCES = ("edge", "lake", "archive", "s3")


def reading_source(layout: ProjectLayout, plan: FleetPlan | None, source_name: str, config=None) -> ReadingSource:
    """The source `--source` names; `config` (the loaded project config) says where the sinks write."""
    if source_name == "edge":
        from sensor_manager.observe.access import host_may_open_edge_dbs

        if host_may_open_edge_dbs(layout):
            from sensor_manager.observe.edge_source import EdgeSource

            return EdgeSource(layout, plan)
        from sensor_manager.observe.container_query import ContainerEdgeSource

        return ContainerEdgeSource(layout, plan)
    return dataset_source(layout, plan, source_name, config)


def dataset_source(layout: ProjectLayout, plan: FleetPlan | None, source_name: str, config=None) -> DatasetSource:
    """The sources free SQL runs over (DuckDB over the sink's files)."""
    if source_name == "lake":
        return lake_source(layout, plan)
    if source_name == "archive":
        return archive_source(layout, plan, config)
    if source_name == "s3":
        return s3_source(plan, config)
    if source_name in SOURCES:
        raise UsageError(f"--sql runs over the lake, archive or s3 only; drop --source {source_name}")
    raise UsageError(f"--source {source_name!r}: choose one of {', '.join(SOURCES)}")

