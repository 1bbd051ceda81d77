"""The S3 sink: readings in a bucket for Databricks, in one of two layouts.

- `delta` (default): a Delta table at `s3://<bucket>/<prefix>/sensor_readings`, written by the Delta
  sink itself (same commits, same app transaction per source, same exactly-once rule). delta-rs 1.x
  commits with S3 conditional put (If-None-Match), so uploaders on many machines need no DynamoDB lock.
- `parquet`: immutable objects `<prefix>/city=<Safe_City>/date=<D>/<sensor>-<gen>-<from>-<to>.parquet` for
  Auto Loader (the safe city name in keys: the `city` column holds the display name, "New York"). The position of each source is an object `<prefix>/_sensor_manager/positions/<hash of
  app id>.json` (Spark and Auto Loader skip `_`-prefixed paths). A part first records in it which
  objects it is about to put (`pending`), then puts them, then moves the position past them. A replay
  after a crash may cover another range than the interrupted batch (batches follow the sources' growth),
  so it first deletes the pending objects it will not overwrite: no row is left in two objects. A part
  beyond the position writes nothing.

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
from typing import Literal, Mapping
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import Field, field_validator

from fleetcore.errors import ConfigError
from fleetcore.naming import safe_city_name
from uploader.batch import Batch, Part
from uploader.schema import CANONICAL_SCHEMA
from uploader.sinks.base import CheckResult, Delivered, Outcome, Rejected, Retry, SinkContext, SinkSettings, SinkSpec
from uploader.sinks.delta import TABLE_NAME, DeltaSink, DeltaSinkSettings
from uploader.sinks.parquet import COMPRESSION, PART_NAME, BadRowsError, conform

NAME = "s3"
META_DIR = "_sensor_manager"
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 60
PUT_THREADS = 4


DEFAULT_PREFIX = "sensor-manager"


class S3ConfigError(ValueError):
    """A setting that can never work (the message names it)."""


class S3SinkSettings(SinkSettings):
    bucket: str | None = Field(None, description="the bucket (seed: S3_BUCKET_NAME)")
    prefix: str = Field(DEFAULT_PREFIX, description="key prefix; layout delta: the table is <prefix>/sensor_readings")
    layout: Literal["delta", "parquet"] = Field("delta", description="delta: a Delta table; parquet: objects for Auto Loader")
    region: str | None = Field(None, description="the bucket's region (seed: AWS_REGION)")
    endpoint_url: str | None = Field(None, description="an S3-compatible endpoint (else AWS_ENDPOINT_URL)")
    profile: str | None = Field(None, description="an AWS profile (seed: AWS_PROFILE)")
    commit_retries: int = Field(20, ge=0, le=1000, description="layout delta: commit retries against a newer version")

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, bucket: str | None) -> str | None:
        if bucket is not None and not BUCKET_NAME.match(bucket):
            raise ValueError(f"{bucket!r} is not a valid S3 bucket name (3-63 of a-z, 0-9, '.', '-')")
        return bucket

    @field_validator("prefix")
    @classmethod
    def _plain_prefix(cls, prefix: str) -> str:
        try:
            return normalise_prefix(prefix)
        except S3ConfigError as exc:
            raise ValueError(str(exc).removeprefix(f"uploader.sinks.s3.prefix {prefix!r} ")) from None


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
    from botocore.exceptions import ClientError, NoCredentialsError
    from botocore.exceptions import ConnectionError as BotoConnectionError
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
            # Few client-level retries, as for boto3 above: a down store must fail a write within seconds so
            # the pipeline's backoff (not object_store's, ~2.5 s per call by default) paces it, and the other
            # sinks keep shipping in between.
            options = {"AWS_REGION": self.region, "max_retries": "1", "retry_timeout": f"{CONNECT_TIMEOUT_SECONDS}s",
                       "connect_timeout": f"{CONNECT_TIMEOUT_SECONDS}s", "timeout": f"{READ_TIMEOUT_SECONDS}s"}
            if self.endpoint:
                options["AWS_ENDPOINT_URL"] = self.endpoint
            if allow_http():
                options["AWS_ALLOW_HTTP"] = "true"
            if profile:
                options["AWS_PROFILE"] = profile
            options.update(_file_credentials(session))
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
            records = {part.app_id: self._position_record(part.app_id) for part in batch.parts}
            positions = {app_id: int(record["upto"]) for app_id, record in records.items()}
            behind = any(positions[part.app_id] < part.after for part in batch.parts)
            todo = [] if behind else [part for part in batch.parts if positions[part.app_id] == part.after]
            # Read and validate every part before the first put, so a refused batch leaves nothing behind.
            planned = {part.app_id: self._objects(part) for part in todo}
            for part in todo:
                self._journal(part, records[part.app_id], [key for key, _ in planned[part.app_id]])
            objects = [item for part in todo for item in planned[part.app_id]]
            with ThreadPoolExecutor(PUT_THREADS) as pool:  # encoding releases the GIL; puts wait on the network
                list(pool.map(lambda item: self._put_rows(*item), objects))
            for part in todo:
                self._put_position({"app_id": part.app_id, "upto": part.upto})
        except Exception as exc:  # noqa: BLE001 - classified here so callers never see vendor types
            if batch.source_error is not None:
                raise batch.source_error from None
            if isinstance(exc, BadRowsError):
                return Rejected(f"{NAME}: {exc}")
            return Retry(f"{NAME}: {describe(exc, self.bucket, self.endpoint)}")
        positions.update({part.app_id: part.upto for part in todo})
        return Delivered(positions=positions, rows=sum(part.rows for part in todo))

    # -- maintenance (clean, reset) --------------------------------------------------------------------
    def _keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys

    def _project_positions(self, project: str, fleet_epoch: int | None) -> dict[str, str]:
        """Position object key -> app id, for this project's namespaces (of one fleet epoch, if given)."""
        from uploader.shipping import namespace_prefix

        wanted = namespace_prefix(project, fleet_epoch)
        found = {}
        for key in self._keys(self.key(META_DIR, "positions") + "/"):
            app_id = json.loads(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())["app_id"]
            if app_id.startswith(wanted):
                found[key] = app_id
        return found

    def _project_objects(self, project: str, fleet_epoch: int | None) -> tuple[list[str], list[str]]:
        """(data objects, position objects) this project wrote: data objects are named by their DB generation."""
        from uploader.shipping import source_of_app_id

        positions = self._project_positions(project, fleet_epoch)
        generations = {source_of_app_id(app_id)[1] for app_id in positions.values()}
        data = []
        for key in self._keys(self.key() + "/" if self.prefix else ""):
            match = PART_NAME.match(key.rsplit("/", 1)[-1])
            named = match["generation"] if match else ""  # <sensor>-<generation>
            if f"/{META_DIR}/" not in f"/{key}" and any(named.endswith(f"-{g}") for g in generations):
                data.append(key)
        return data, list(positions)

    def _rows(self, keys: list[str]) -> int:
        return sum(pq.ParquetFile(io.BytesIO(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()))
                   .metadata.num_rows for key in keys)

    def count_project(self, project: str, fleet_epoch: int | None = None) -> int:
        if self.delta is not None:
            return self.delta.count_project(project, fleet_epoch)
        return self._rows(self._project_objects(project, fleet_epoch)[0])

    def delete_project(self, project: str, fleet_epoch: int | None = None) -> int:
        """Delta layout: a Delta delete. Parquet: the objects named by this project's DB generations; for `reset`
        (one old fleet epoch, never resumed) their position objects too. `clean` keeps the positions: they
        hold what `mark_shipped` recorded."""
        if self.delta is not None:
            return self.delta.delete_project(project, fleet_epoch)
        data, positions = self._project_objects(project, fleet_epoch)
        rows = self._rows(data)
        for keys in (data, positions if fleet_epoch is not None else []):
            for start in range(0, len(keys), 1000):
                self.client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": key} for key in keys[start:start + 1000]], "Quiet": True})
        return rows

    def mark_shipped(self, positions: dict[str, int]) -> None:
        if self.delta is not None:
            self.delta.mark_shipped(positions)
            return
        for app_id, upto in positions.items():
            self.client.put_object(Bucket=self.bucket, Key=self._position_key(app_id),
                                   Body=json.dumps({"app_id": app_id, "upto": upto}).encode())

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

    def _position_record(self, app_id: str) -> dict:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._position_key(app_id))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return {"app_id": app_id, "upto": 0}
        return json.loads(body)

    def _position(self, app_id: str) -> int:
        return int(self._position_record(app_id)["upto"])

    def _put_position(self, record: dict) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._position_key(record["app_id"]), Body=json.dumps(record).encode())

    def _journal(self, part: Part, record: dict, keys: list[str]) -> None:
        """Before a part's objects are put: remove what an interrupted earlier batch of this source left
        (its range may differ from this one's, so its objects would not be overwritten), then record which
        objects this batch is about to put, so a replay can do the same for it."""
        leftovers = sorted(set(record.get("pending", [])) - set(keys))
        for start in range(0, len(leftovers), 1000):
            self.client.delete_objects(Bucket=self.bucket, Delete={
                "Objects": [{"Key": key} for key in leftovers[start:start + 1000]], "Quiet": True})
        self._put_position({"app_id": part.app_id, "upto": part.after, "pending": keys})

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


def build(settings: S3SinkSettings, context: SinkContext) -> S3Sink:
    if not settings.bucket:
        raise ConfigError("uploader.sinks.s3.bucket is not set (or S3_BUCKET_NAME): name the bucket to write to")
    try:
        return S3Sink(settings.bucket, settings.prefix, layout=settings.layout, region=settings.region,
                      endpoint_url=settings.endpoint_url, profile=settings.profile, stage=context.stage,
                      delta_settings=DeltaSinkSettings(commit_retries=settings.commit_retries))
    except S3ConfigError as exc:
        raise ConfigError(str(exc)) from None


def _file_credentials(session) -> dict[str, str]:
    """Keys boto3 read from a shared-credentials file (a container's secret file), for delta-rs, which reads no such file."""
    credentials = session.get_credentials()
    if credentials is None or credentials.method != "shared-credentials-file":
        return {}
    frozen = credentials.get_frozen_credentials()
    options = {"AWS_ACCESS_KEY_ID": frozen.access_key, "AWS_SECRET_ACCESS_KEY": frozen.secret_key}
    if frozen.token:
        options["AWS_SESSION_TOKEN"] = frozen.token
    return options


def _credentials_file(settings: S3SinkSettings, environ: Mapping[str, str]) -> dict[str, str]:
    """Keys from the environment travel to containers as a shared-credentials file, never as values in compose."""
    if not (environ.get("AWS_ACCESS_KEY_ID") and environ.get("AWS_SECRET_ACCESS_KEY")):
        return {}
    lines = ["[default]", f"aws_access_key_id = {environ['AWS_ACCESS_KEY_ID']}",
             f"aws_secret_access_key = {environ['AWS_SECRET_ACCESS_KEY']}"]
    if environ.get("AWS_SESSION_TOKEN"):
        lines.append(f"aws_session_token = {environ['AWS_SESSION_TOKEN']}")
    return {"aws_credentials": "\n".join(lines) + "\n"}


def _preflight(settings: S3SinkSettings, environ: Mapping[str, str]) -> list[str]:
    problems = []
    if not settings.bucket:
        problems.append("uploader.sinks.s3.bucket is not set: set it or S3_BUCKET_NAME")
    has_keys = environ.get("AWS_ACCESS_KEY_ID") and environ.get("AWS_SECRET_ACCESS_KEY")
    has_profile = settings.profile or environ.get("AWS_PROFILE") or os.path.exists(os.path.expanduser("~/.aws/credentials"))
    if not (has_keys or has_profile):
        problems.append("the s3 sink has no credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or uploader.sinks.s3.profile")
    try:
        resolve_endpoint(settings.endpoint_url)
    except S3ConfigError as exc:
        problems.append(str(exc))
    return problems


SPEC = SinkSpec(
    name=NAME,
    settings=S3SinkSettings,
    build=build,
    location=lambda settings, context: f"s3://{settings.bucket}/{settings.prefix} (layout {settings.layout})",
    needs_network=True,
    container_env=("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ALLOW_HTTP",
                   "AWS_EC2_METADATA_DISABLED"),
    secrets=_credentials_file,
    secret_env={"aws_credentials": "AWS_SHARED_CREDENTIALS_FILE"},
    preflight=_preflight,
    cleans="layout delta: a Delta delete by project (reset: and fleet_epoch); layout parquet: the objects named by "
           "this project's DB generations and its position objects",
)
