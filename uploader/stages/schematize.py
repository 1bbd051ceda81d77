"""The `schematized` stage: the canonical record with every value inside its type's domain, or the row is dead-lettered.

`raw` keeps any row it can make canonical. `schematized` also refuses a row whose values the canonical
types cannot vouch for: no status_code or anomaly_flag, a metric that is not finite (±inf), a latitude
outside [-90, 90] or a longitude outside [-180, 180]. Missing metrics stay null (a `missing` anomaly is a
typed fact); nothing is ever zero-filled or clamped.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from uploader.batch import Lineage, Rejection
from uploader.schema import METRICS
from uploader.stages.raw import RawStage

BOUNDS = {"latitude": 90.0, "longitude": 180.0}


def _reasons(rows: pa.RecordBatch) -> list[tuple[pa.Array, str]]:
    checks = [(pc.is_null(rows.column("status_code")), "missing status_code"),
              (pc.is_null(rows.column("anomaly_flag")), "missing anomaly_flag")]
    for metric in METRICS:
        values = rows.column(metric)
        checks.append((pc.fill_null(pc.invert(pc.is_finite(values)), False), f"non-finite {metric}"))
    for column, bound in BOUNDS.items():
        values = rows.column(column)
        checks.append((pc.fill_null(pc.greater(pc.abs(values), bound), False), f"{column} outside ±{bound:g}"))
    return checks


class SchematizedStage(RawStage):
    name = "schematized"

    def apply(self, chunk: pa.RecordBatch, lineage: Lineage) -> tuple[pa.RecordBatch | None, list[Rejection]]:
        kept, rejected = super().apply(chunk, lineage)
        if kept is None:
            return None, rejected
        checks = _reasons(kept)
        bad = checks[0][0]
        for check, _ in checks[1:]:
            bad = pc.or_(bad, check)
        if not pc.any(bad).as_py():
            return kept, rejected
        flags = [check.to_numpy(zero_copy_only=False) for check, _ in checks]
        source_ids = kept.column("source_id").to_numpy()
        for index in np.flatnonzero(bad.to_numpy(zero_copy_only=False)):
            reasons = [reason for flag, (_, reason) in zip(flags, checks, strict=True) if flag[index]]
            rejected.append(Rejection(int(source_ids[index]), "; ".join(reasons)))
        kept = kept.filter(pc.invert(bad))
        return (kept if kept.num_rows else None), rejected
