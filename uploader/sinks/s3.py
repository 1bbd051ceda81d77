"""The S3 sink: readings in a bucket for Databricks, in one of two layouts.

- `delta` (default): a Delta table at `s3://<bucket>/<prefix>/sensor_readings`, written by the Delta
  sink itself (same commits, same app transaction per source, same exactly-once rule). delta-rs 1.x
  commits with S3 conditional put (If-None-Match), so uploaders on many machines need no DynamoDB lock.
- `parquet`: immutable objects `<prefix>/city=<Safe_City>/date=<D>/<sensor>-<gen>-<from>-<to>.parquet`
  for Auto Loader (the safe city name in keys: the `city` column holds the display name, "New York").
  Names are deterministic, so a replay overwrites identical bytes; the position of each
  source is an object `<prefix>/_sensor_manager/positions/<hash of app id>.json` put after the part's
  data objects (Spark and Auto Loader skip `_`-prefixed paths). A crash between the two leaves data
  objects that the replay rewrites byte for byte, and a part beyond the position writes nothing.

Credentials come from the standard chain (boto3 and delta-rs read the same env: AWS_PROFILE,
AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_REGION, instance profiles); none is copied into this
object. `endpoint_url` (or AWS_ENDPOINT_URL) points at an S3-compatible store; a plain-http endpoint
needs AWS_ALLOW_HTTP=true, as delta-rs requires. Failures are classified here: rows the schema refuses
are Rejected, everything else is Retry (the store may come back); `check()` names permanent problems
(no such bucket, access denied, wrong region, clock skew, not an S3 endpoint).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Literal
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fleetcore.naming import safe_city_name
from uploader.batch import Batch, Part
from uploader.schema import CANONICAL_SCHEMA
from uploader.settings import DeltaSinkSettings
from uploader.sinks.base import CheckResult, Delivered, Outcome, Rejected, Retry
from uploader.sinks.delta import TABLE_NAME, DeltaSink
from uploader.sinks.parquet import COMPRESSION, BadRowsError, conform

NAME = "s3"
META_DIR = "_sensor_manager"
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 60
PUT_THREADS = 4


class S3ConfigError(ValueError):
    """A setting that can never work (the message names it)."""


def allow_http() -> bool:
    return os.environ.get("AWS_ALLOW_HTTP", "").strip().lower() in ("1", "true", "yes")


def normalise_prefix(prefix: str) -> str:
    """The prefix without surrounding slashes; `..`, `.`, empty segments and backslashes are refused."""
    stripped = prefix.strip("/")
    segments = stripped.split("/") if stripped else []
    if "\\" in prefix or any(segment in ("", ".", "..") for segment in segments):
        raise S3ConfigError(f"uploader.sinks.s3.prefix {prefix!r} must be a plain key prefix "
                            "(no '..', '.', '//' or backslashes)")
    return stripped


def resolve_endpoint(endpoint_url: str | None) -> str | None:
    """The configured endpoint, else the SDKs' standard env; http only with AWS_ALLOW_HTTP=true."""
    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        return None
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
        raise S3ConfigError(f"uploader.sinks.s3.endpoint_url {endpoint!r} must look like https://host[:port]")
    if parts.scheme == "http" and not allow_http():
        raise S3ConfigError(f"uploader.sinks.s3.endpoint_url {endpoint!r} is plain http: "
                            "set AWS_ALLOW_HTTP=true to allow it")
    return endpoint.rstrip("/")


def describe(exc: BaseException, bucket: str, endpoint: str | None) -> str:
    """One line saying what went wrong and what to do about it."""
    from botocore.exceptions import ClientError, ConnectionError as BotoConnectionError, NoCredentialsError
    from botocore.parsers import ResponseParserError

    where = endpoint or "AWS S3"
    if isinstance(exc, NoCredentialsError):
        return ("no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "or run where an instance profile applies")
    if isinstance(exc, BotoConnectionError):
        return f"cannot reach {where}: {exc}"
    if isinstance(exc, ResponseParserError):
        return f"{where} does not answer like S3 (check endpoint_url / AWS_ENDPOINT_URL)"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchBucket", "404") or (code == "" and status == 404):
            return f"bucket {bucket!r} does not exist at {where} (check the bucket name and region)"
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return (f"{where} refuses the credentials ({code}): check AWS_PROFILE or "
                    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
        if code in ("AccessDenied", "403", "AllAccessDisabled"):
            return (f"access denied to bucket {bucket!r}: the credentials need s3:PutObject, s3:GetObject, "
                    "s3:ListBucket and s3:DeleteObject on it")
        if code in ("PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException", "301"):
            return f"bucket {bucket!r} is in another region: set AWS_REGION (uploader.sinks.s3.region) to its region"
        if code == "RequestTimeTooSkewed":
            return "the clock of this machine is too far off S3's: synchronise it (NTP)"
        if status is not None and (status >= 500 or code in ("SlowDown", "Throttling", "RequestTimeout")):
            return f"{where} is unavailable ({code or status}): will retry"
        if status is not None and not code:
            return f"{where} does not answer like S3 (HTTP {status}; check endpoint_url / AWS_ENDPOINT_URL)"
        return f"{code or status}: {error.get('Message', exc)}"
    return f"{type(exc).__name__}: {exc}"


class S3Sink:
    name = NAME

    def __init__(self, bucket: str, prefix: str = "sensor-manager", *, layout: Literal["delta", "parquet"] = "delta",
                 region: str | None = None, endpoint_url: str | None = None, profile: str | None = None,
                 delta_settings: DeltaSinkSettings | None = None, stage: str = "raw"):
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError

        if not BUCKET_NAME.match(bucket or ""):
            raise S3ConfigError(f"uploader.sinks.s3.bucket {bucket!r} is not a valid S3 bucket name")
        if layout not in ("delta", "parquet"):
            raise S3ConfigError(f"uploader.sinks.s3.layout {layout!r} must be delta or parquet")
        self.bucket = bucket
        self.prefix = normalise_prefix(prefix)
        self.layout = layout
        self.stage = stage
        self.endpoint = resolve_endpoint(endpoint_url)
        try:
            session = boto3.session.Session(profile_name=profile, region_name=region)
        except BotoCoreError as exc:  # e.g. ProfileNotFound
            raise S3ConfigError(f"uploader.sinks.s3.profile: {exc}") from None
        self.region = session.region_name or "us-east-1"
        # Few SDK-level retries: the pipeline's backoff owns retrying, and check() must answer quickly.
        config = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=CONNECT_TIMEOUT_SECONDS,
                        read_timeout=READ_TIMEOUT_SECONDS,
                        s3={"addressing_style": "path"} if self.endpoint else None)
        self.client = session.client("s3", region_name=self.region, endpoint_url=self.endpoint, config=config)
        self.delta: DeltaSink | None = None
        if layout == "delta":
            options = {"AWS_REGION": self.region}
            if self.endpoint:
                options["AWS_ENDPOINT_URL"] = self.endpoint
            if allow_http():
                options["AWS_ALLOW_HTTP"] = "true"
            if profile:
                options["AWS_PROFILE"] = profile
            self.delta = DeltaSink(self.uri(TABLE_NAME), delta_settings, stage, storage_options=options, name=NAME)

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def uri(self, *parts: str) -> str:
        return f"s3://{self.bucket}/{self.key(*parts)}"

    # -- the contract ------------------------------------------------------------------------------
    def resume_from(self, app_id: str) -> int | None:
        if self.delta is not None:
            return self.delta.resume_from(app_id)
        return self._position(app_id)

    def write(self, batch: Batch) -> Outcome:
        if self.delta is not None:
            return self.delta.write(batch)
        try:
            positions = {part.app_id: self._position(part.app_id) for part in batch.parts}
            behind = any(positions[part.app_id] < part.after for part in batch.parts)
            todo = [] if behind else [part for part in batch.parts if positions[part.app_id] == part.after]
            # Read and validate every part before the first put, so a refused batch leaves nothing behind.
            objects = [item for part in todo for item in self._objects(part)]
            with ThreadPoolExecutor(PUT_THREADS) as pool:  # encoding releases the GIL; puts wait on the network
                list(pool.map(lambda item: self._put_rows(*item), objects))
            for part in todo:
                self.client.put_object(Bucket=self.bucket, Key=self._position_key(part.app_id),
                                       Body=json.dumps({"app_id": part.app_id, "upto": part.upto}).encode())
        except Exception as exc:  # noqa: BLE001 - classified here so callers never see vendor types
            if batch.source_error is not None:
                raise batch.source_error from None
            if isinstance(exc, BadRowsError):
                return Rejected(f"{NAME}: {exc}")
            return Retry(f"{NAME}: {describe(exc, self.bucket, self.endpoint)}")
        positions.update({part.app_id: part.upto for part in todo})
        return Delivered(positions=positions, rows=sum(part.rows for part in todo))

    def check(self) -> CheckResult:
        """Put, list and delete a probe object under the prefix; then (delta) open or create the table."""
        probe = self.key(META_DIR, f"probe-{uuid.uuid4().hex}")
        step = "put a probe object"
        try:
            self.client.put_object(Bucket=self.bucket, Key=probe, Body=b"")
            step = "list the probe object"
            listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=probe)
            if [item.get("Key") for item in listed.get("Contents", [])] != [probe]:
                return CheckResult(False, f"{NAME}: {self.endpoint or 'AWS S3'} accepted a probe object but does not "
                                          "list it: not an S3 endpoint? (check endpoint_url / AWS_ENDPOINT_URL)")
            step = "delete the probe object"
            self.client.delete_object(Bucket=self.bucket, Key=probe)
        except Exception as exc:  # noqa: BLE001
            return CheckResult(False, f"{NAME}: cannot {step} in s3://{self.bucket}/{self.prefix}: "
                                      f"{describe(exc, self.bucket, self.endpoint)}")
        if self.delta is not None:
            return self.delta.check()
        return CheckResult(True, f"{NAME}: {self.uri()} ok (layout parquet)")

    # -- layout parquet ----------------------------------------------------------------------------
    def _position_key(self, app_id: str) -> str:
        return self.key(META_DIR, "positions", f"{hashlib.sha256(app_id.encode()).hexdigest()[:32]}.json")

    def _position(self, app_id: str) -> int:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._position_key(app_id))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return 0
        return int(json.loads(body)["upto"])

    def _put_rows(self, key: str, rows: pa.Table) -> None:
        body = io.BytesIO()
        pq.write_table(rows, body, compression=COMPRESSION)
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body.getvalue())

    def _objects(self, part: Part) -> list[tuple[str, pa.Table]]:
        """The part's rows grouped into one Parquet object each per (city, date, sensor), with deterministic names."""
        chunks = [conform(chunk) for chunk in part.stream()]
        if not chunks:
            return []
        table = pa.Table.from_batches(chunks, CANONICAL_SCHEMA)
        groups = table.group_by(["city", "date", "sensor_id"], use_threads=False).aggregate([])
        named = []
        for city, date, sensor in zip(*(groups[c].to_pylist() for c in ("city", "date", "sensor_id")), strict=True):
            mask = pc.and_(pc.and_(pc.equal(table["city"], city), pc.equal(table["date"], pa.scalar(date, pa.date32()))),
                           pc.equal(table["sensor_id"], sensor))
            name = f"{sensor}-{part.lineage.generation}-{part.after + 1}-{part.upto}.parquet"
            key = self.key(f"city={safe_city_name(city)}", f"date={date.isoformat()}", name)
            named.append((key, table.filter(mask)))
        return named
