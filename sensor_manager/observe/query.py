"""`query`: readings from the edge DBs (read-only), the lake, the Parquet archive, the S3 sink's bucket or the
Cosmos sink's container.

`reading_source` picks the one `ReadingSource` (observe/readings.py) for `--source`, once:
- edge: `observe/edge_source.py`, or, when the host may not open live DBs (Docker Desktop,
  `observe/access.py`), `observe/container_query.py`, which runs the same query inside the uploaders;
- lake, archive, s3: `observe/dataset_source.py`, DuckDB over the files that sink wrote;
- cosmos: `observe/cosmos_source.py`, Cosmos SQL against the container.
Free SQL (`--sql`) runs over a dataset source, in a locked DuckDB connection, or as read-only Cosmos SQL.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from fleetcore.errors import UsageError
from sensor_manager.layout import ProjectLayout
from sensor_manager.observe.dataset_source import DatasetSource, archive_source, lake_source, s3_source
from sensor_manager.observe.readings import ReadingSource
from sensor_manager.plan import FleetPlan

if TYPE_CHECKING:
    from sensor_manager.observe.cosmos_source import CosmosSource

SOURCES = ("edge", "lake", "archive", "s3", "cosmos")


def reading_source(layout: ProjectLayout, plan: FleetPlan | None, source_name: str, config=None) -> ReadingSource:
    """The source `--source` names; `config` (the loaded project config) says where the sinks write."""
    if source_name == "edge":
        from sensor_manager.observe.access import host_may_open_edge_dbs

        if host_may_open_edge_dbs(layout):
            from sensor_manager.observe.edge_source import EdgeSource

            return EdgeSource(layout, plan)
        from sensor_manager.observe.container_query import ContainerEdgeSource

        return ContainerEdgeSource(layout, plan)
    if source_name == "cosmos":
        return _cosmos(plan, config)
    return dataset_source(layout, plan, source_name, config)


def sql_source(layout: ProjectLayout, source_name: str, config=None) -> DatasetSource | CosmosSource:
    """The source `--sql` runs over: DuckDB SQL over a dataset source, or Cosmos SQL."""
    if source_name == "cosmos":
        return _cosmos(None, config)
    return dataset_source(layout, None, source_name, config)


def _cosmos(plan: FleetPlan | None, config) -> CosmosSource:
    from sensor_manager.observe.cosmos_source import cosmos_source

    return cosmos_source(plan, config)


def dataset_source(layout: ProjectLayout, plan: FleetPlan | None, source_name: str, config=None) -> DatasetSource:
    """The sources free SQL runs over (DuckDB over the sink's files)."""
    if source_name == "lake":
        return lake_source(layout, plan)
    if source_name == "archive":
        return archive_source(layout, plan, config)
    if source_name == "s3":
        return s3_source(plan, config)
    if source_name in SOURCES:
        raise UsageError(f"--sql runs over the lake, archive, s3 or cosmos only; drop --source {source_name}")
    raise UsageError(f"--source {source_name!r}: choose one of {', '.join(SOURCES)}")

