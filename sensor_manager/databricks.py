"""What Databricks needs to read the S3 sink: SQL over its Delta table, an Auto Loader cell over its
Parquet objects, and the IAM policy the uploader's credentials need. Rendered from the s3 settings, so
every statement points at what the uploader writes."""
from __future__ import annotations

import json
import re
from typing import Any

from fleetcore.errors import ConfigError
from uploader.sinks.delta import TABLE_NAME
from uploader.sinks.s3 import META_DIR, S3SinkSettings


def _schema_name(project: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", project.lower())


def iam_policy(bucket: str, prefix: str) -> dict:
    """Least privilege under the prefix. DeleteObject serves `clean`/`reset`, removing the diagnostics probe and
    (layout parquet) removing the objects of a batch interrupted by a crash before its replay."""
    keys = f"arn:aws:s3:::{bucket}/{prefix}/*" if prefix else f"arn:aws:s3:::{bucket}/*"
    listing: dict[str, Any] = {"Sid": "ListThePrefix", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}"}
    if prefix:
        listing["Condition"] = {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}}
    return {"Version": "2012-10-17", "Statement": [
        listing,
        {"Sid": "WriteAndReadObjects", "Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"], "Resource": keys},
        {"Sid": "DeleteForCleanAndRecovery", "Effect": "Allow", "Action": "s3:DeleteObject", "Resource": keys},
    ]}


def render(settings: S3SinkSettings, project: str) -> str:
    """SQL and a notebook cell for the configured bucket, prefix and layout, then the IAM policy."""
    if not settings.bucket:
        raise ConfigError("uploader.sinks.s3.bucket is not set (or S3_BUCKET_NAME): name the bucket the uploader writes to")
    base = f"s3a://{settings.bucket}/{settings.prefix}".rstrip("/")
    schema = _schema_name(project)
    lines = [f"-- Databricks: read what sensor-manager's s3 sink writes (layout {settings.layout}).",
             f"CREATE SCHEMA IF NOT EXISTS {schema};"]
    if settings.layout == "delta":
        lines += [
            "-- The uploader commits a Delta table there itself (one app transaction per source: exactly once).",
            f"CREATE TABLE IF NOT EXISTS {schema}.{TABLE_NAME}",
            "USING DELTA",
            f"LOCATION '{base}/{TABLE_NAME}';",
        ]
    else:
        meta = f"{base}/{META_DIR}/autoloader"
        lines += [
            "-- Notebook cell (Python): Auto Loader picks up each immutable Parquet object once and appends it",
            f"-- to the Delta table {schema}.{TABLE_NAME}. Paths starting with '_' (the uploader's positions) are skipped.",
            "(spark.readStream.format(\"cloudFiles\")",
            "    .option(\"cloudFiles.format\", \"parquet\")",
            f"    .option(\"cloudFiles.schemaLocation\", \"{meta}/schema\")",
            "    .option(\"cloudFiles.partitionColumns\", \"city,date\")",
            f"    .load(\"{base}/\")",
            "    .writeStream",
            f"    .option(\"checkpointLocation\", \"{meta}/checkpoint\")",
            "    .trigger(availableNow=True)",
            f"    .toTable(\"{schema}.{TABLE_NAME}\"))",
        ]
    lines += ["", "-- IAM policy for the uploader's credentials (DeleteObject: clean/reset, the diagnostics probe, an interrupted batch):",
              json.dumps(iam_policy(settings.bucket, settings.prefix), indent=2)]
    return "\n".join(lines) + "\n"
