"""`diagnostics`: a checklist of what can be wrong with a project, each check pass | warn | fail | skip with a remedy.

Checks only read: DBs are opened `mode=ro`; the lake write probe creates and removes one temp file.
`skip` means the check does not apply (no recorded runtime, not the docker runtime, project stopped).
`edge reads` says whether the host opens the edge DBs (see `observe/access.py`); when it may not (Docker
Desktop), every `db <sensor_id>` check is skipped with how to run it inside the city's uploader container.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

from fleetcore.errors import LakeUnreadableError, SensorManagerError
from fleetcore.timestamps import iso_epoch
from sensor_manager.layout import ProjectLayout
from sensor_manager.observe import lake
from sensor_manager.observe.access import EdgeAccess, edge_access
from sensor_manager.observe.edge import EdgeDatabase, edge_databases, file_sizes
from sensor_manager.observe.monitor import Monitor
from sensor_manager.observe.services import runtime_fault, service_statuses
from sensor_manager.plan import FleetPlan, load_plan
from sensor_manager.runtimes import RuntimeRecord, read_runtime_record
from sensor_manager.runtimes.base import ServiceStatus
from sensor_manager.simulator.db import open_readonly

SCHEMA_VERSION = 1
Status = Literal["pass", "warn", "fail", "skip"]
WAL_WARN_BYTES = 64 * 1024 * 1024
FREE_WARN_BYTES = 1024**3
FREE_FAIL_BYTES = 100 * 1024**2
CLOCK_TOLERANCE_SECONDS = 5.0
LAG_WARN_SECONDS = 300.0
GAP_SCAN_ROWS = 1_000_000  # rows a seq-gap search reads at most; beyond that the gap is reported without a position
ERROR_LINES = 3
LAKE_REMEDY = "the Delta log is damaged or unreadable: check permissions, restore or move aside the damaged _delta_log entry"


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    hint: str = ""


@dataclass
class Report:
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return not any(c.status == "fail" for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "ok": self.ok, "checks": [asdict(c) for c in self.checks]}


def run_diagnostics(layout: ProjectLayout, load_config: Callable[[], Any]) -> Report:
    checks: list[Check] = []
    config, check = _config(load_config)
    checks.append(check)
    layout = lake.with_configured_lake(layout, config)
    record = read_runtime_record(layout)
    checks.append(_runtime(record))
    checks.extend(_docker(layout, record, config))
    access = edge_access(layout)
    checks.append(_edge_reads(access))
    plan = _plan(layout, checks)
    services = service_statuses(layout) if record else []
    running = any(s.state != "stopped" for s in services)
    if fault := runtime_fault(layout):
        checks.append(Check("supervision", "fail", fault.problem, fault.remedy))
    checks.extend(_services(layout, services))
    checks.append(_config_reload(layout))
    checks.extend(database_checks(layout, plan, running, access=access))
    checks.extend(_disk(layout))
    checks.extend(_lake(layout))
    checks.extend(_sinks(layout, config))
    checks.extend(cosmos_checks(config))
    checks.extend(_lag(layout, plan, running, config, access))
    checks.append(_dead_letters(layout))
    return Report(checks)


# --- configuration and runtime --------------------------------------------------------------------


def _config(load_config) -> tuple[Any, Check]:
    try:
        config = load_config()
    except SensorManagerError as exc:
        first = str(exc).splitlines()[0]
        return None, Check("config", "fail", first, "fix the config; `config validate` lists every problem")
    return config, Check("config", "pass", f"{getattr(config, 'source_path', None) or 'bundled default'} is valid")


def _config_reload(layout: ProjectLayout) -> Check:
    """The last hot reload of the config file (live/reload.py): a rejected change is a failed check."""
    from sensor_manager.live.reload import describe, read_record

    record = read_record(layout)
    if record is None:
        return Check("config reload", "skip", "the config file has not changed while the fleet ran")
    if record.rejected:
        return Check("config reload", "fail", describe(record), "fix the config file (`config validate`); it is applied once valid")
    return Check("config reload", "pass", describe(record))


def _plan(layout: ProjectLayout, checks: list[Check]) -> FleetPlan | None:
    try:
        return load_plan(layout)
    except SensorManagerError as exc:
        checks.append(Check("plan", "fail", str(exc), "move state/plan.json away and run `plan` again"))
        return None


def _runtime(record: RuntimeRecord | None) -> Check:
    if record is None:
        return Check("runtime", "skip", "no runtime recorded: the project has not been started", "start it: ./sensor_manager.py start")
    why = record.reason or "recorded at start"
    return Check("runtime", "pass", f"{record.runtime} ({why}; started {record.started_at or '?'})")


def _swarm(layout: ProjectLayout, config) -> list[Check]:
    """The swarm runtime: a manager answers, every planned city has a node, the stack's image is here."""
    from sensor_manager.runtimes import topology
    from sensor_manager.runtimes.engine import docker_client
    from sensor_manager.runtimes.swarm import SwarmRuntime

    try:
        client = docker_client(timeout=5)
        nodes = topology.read_nodes(client)
    except SensorManagerError as exc:
        return [Check("engine", "fail", str(exc), "start the Docker engine, set DOCKER_HOST, or `docker swarm init`"),
                Check("placement", "skip", "no swarm manager"), Check("image", "skip", "no swarm manager")]
    engine = Check("engine", "pass", f"swarm manager, {len(nodes)} node(s): {', '.join(n.hostname for n in nodes)}")
    plan = load_plan(layout)
    settings = config.swarm if config is not None else topology.SwarmSettings()
    problems = topology.placement_problems(list(plan.cities), nodes, settings) if plan else []
    placement = Check("placement", "fail" if problems else "pass", "; ".join(problems) or "every planned city has a node",
                      "label a node: ./sensor_manager.py nodes label NODE --city CITY" if problems else "")
    image = SwarmRuntime(layout).recorded_image
    if not image:
        return [engine, placement, Check("image", "skip", "no stack render has recorded an image tag")]
    present = bool(client.images.list(name=image))
    return [engine, placement, Check("image", "pass" if present else "fail", f"{image} {'present on this node' if present else 'missing on this node'}",
                                     "" if present else "build it (./sensor_manager.py build), or push it for the nodes: build --push --registry R")]


def _docker(layout: ProjectLayout, record: RuntimeRecord | None, config=None) -> list[Check]:
    names = ("engine", "compose", "image")
    if record and record.runtime == "swarm":
        return _swarm(layout, config)
    if not record or record.runtime != "docker":
        return [Check(name, "skip", "the recorded runtime is not docker") for name in names]
    from sensor_manager.runtimes.engine import compose_command, docker_client

    try:
        client = docker_client(timeout=5)
        version = client.version()
        engine = Check("engine", "pass", f"Docker {version.get('Version', '?')}, API {version.get('ApiVersion', '?')}")
    except SensorManagerError as exc:
        return [Check("engine", "fail", str(exc), "start the Docker engine or set DOCKER_HOST"),
                Check("compose", "skip", "no engine"), Check("image", "skip", "no engine")]
    try:
        compose = Check("compose", "pass", f"{' '.join(compose_command())} (Compose v2)")
    except SensorManagerError as exc:
        compose = Check("compose", "fail", str(exc), "install the Docker Compose v2 plugin")
    from sensor_manager.runtimes.compose import ComposeRuntime

    image = ComposeRuntime(layout).recorded_image
    if not image:
        return [engine, compose, Check("image", "skip", "no compose render has recorded an image tag")]
    present = bool(client.images.list(name=image))
    return [engine, compose, Check("image", "pass" if present else "fail", f"{image} {'present' if present else 'missing'}",
                                   "" if present else "rebuild it: ./sensor_manager.py build")]


def _edge_reads(access: EdgeAccess) -> Check:
    if access.host:
        return Check("edge reads", "pass", f"host: edge DBs are opened read-only from the host ({access.reason})")
    return Check("edge reads", "pass", f"container: edge DBs are never opened from the host ({access.reason}); monitor reads "
                 "status files, query --source edge runs inside the uploader containers, db checks are skipped")


# --- services -------------------------------------------------------------------------------------


def _services(layout: ProjectLayout, services: list[ServiceStatus]) -> list[Check]:
    if not services:
        return [Check("services", "skip", "no runtime recorded or no planned services")]
    if all(s.state == "stopped" for s in services):
        return [Check("services", "skip", f"project stopped ({len(services)} services)", "start it: ./sensor_manager.py start")]
    return [_service(layout, s) for s in services]


def _service(layout: ProjectLayout, service: ServiceStatus) -> Check:
    detail = f"{service.state}, {service.health}, {service.restarts} restarts"
    name = f"service {service.name}"
    if service.state == "crashloop":
        errors = last_error_lines(layout.logs / f"{service.name}.log")
        return Check(name, "fail", "; ".join([detail, *errors]), f"read `./sensor_manager.py logs {service.name}`, fix the cause, then `restart {service.name}`")
    if service.state in ("restarting", "stopped") or service.health in ("unhealthy", "hung"):
        return Check(name, "warn", detail, f"`./sensor_manager.py logs {service.name}`; `start {service.name}` if it should run")
    return Check(name, "pass", detail)


def last_error_lines(path: Path, count: int = ERROR_LINES, window: int = 64 * 1024) -> list[str]:
    """The last lines mentioning an error in a service log (reads only the file's tail)."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - window))
            lines = handle.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []
    flagged = [line.strip() for line in lines if any(word in line.lower() for word in ("error", "traceback", "exception", "fatal"))]
    return (flagged or [line.strip() for line in lines if line.strip()])[-count:]


# --- edge DBs ---------------------------------------------------------------------------------------


@dataclass
class DatabaseStats:
    """What diagnostics learns about one DB (also written into the bundle)."""

    sensor_id: str
    path: str
    exists: bool
    db_bytes: int = 0
    wal_bytes: int = 0
    quick_check: str | None = None
    first_seq: int | None = None
    last_seq: int | None = None
    rows: int | None = None
    missing_seqs: int = 0
    first_gap_after: int | None = None
    last_timestamp: str | None = None
    generation: str | None = None
    error: str | None = None


def database_stats(db: EdgeDatabase, root: Path) -> DatabaseStats:
    stats = DatabaseStats(db.sensor_id, str(db.path.relative_to(root)), db.path.exists())
    if not stats.exists:
        return stats
    stats.db_bytes, stats.wal_bytes = file_sizes(db.path)
    try:
        conn = open_readonly(db.path)
        try:
            stats.quick_check = "; ".join(r[0] for r in conn.execute("PRAGMA quick_check(5)"))
            conn.execute("BEGIN")
            _seq_facts(conn, stats)
            conn.execute("COMMIT")
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        stats.error = str(exc)
    return stats


def _seq_facts(conn: sqlite3.Connection, stats: DatabaseStats) -> None:
    """Seq range and gaps: `seq` numbers written rows, so (last - first + 1) - rows is the number lost."""
    first = conn.execute("SELECT seq FROM sensor_readings ORDER BY id LIMIT 1").fetchone()
    last = conn.execute("SELECT seq, timestamp FROM sensor_readings ORDER BY id DESC LIMIT 1").fetchone()
    row = conn.execute("SELECT generation FROM sensor_meta LIMIT 1").fetchone()
    stats.generation = row[0] if row else None
    if not first:
        stats.rows = 0
        return
    stats.first_seq, stats.last_seq, stats.last_timestamp = first[0], last[0], last[1]
    # One pass over the DB: diagnostics may read a whole DB (quick_check already does), the monitor never does.
    stats.rows = conn.execute("SELECT count(*) FROM sensor_readings").fetchone()[0]
    stats.missing_seqs = (stats.last_seq - stats.first_seq + 1) - stats.rows
    if stats.missing_seqs > 0:
        gap = conn.execute(
            "SELECT prev FROM (SELECT seq, lag(seq) OVER (ORDER BY id) AS prev FROM "
            "(SELECT id, seq FROM sensor_readings ORDER BY id LIMIT ?)) WHERE seq - prev > 1 LIMIT 1",
            (GAP_SCAN_ROWS,),
        ).fetchone()
        stats.first_gap_after = gap[0] if gap else None


def database_checks(layout: ProjectLayout, plan: FleetPlan | None, running: bool, now: float | None = None,
                    access: EdgeAccess | None = None) -> list[Check]:
    databases = edge_databases(layout, plan)
    if not databases:
        return [Check("databases", "skip", "no plan and no sensor DBs yet", "start the fleet or run `simulate`")]
    if not (access or edge_access(layout)).host:
        return [_database_skipped(layout, db) for db in databases]
    now = time.time() if now is None else now
    return [_database_check(database_stats(db, layout.root), running, now) for db in databases]


def _database_skipped(layout: ProjectLayout, db: EdgeDatabase) -> Check:
    """The DB is not opened from the host: say how to run the same checks inside the city's uploader container."""
    from fleetcore.naming import city_service_slug
    from sensor_manager.observe.container_query import compose_project_name

    service = f"uploader-{city_service_slug(db.safe_city)}"
    return Check(f"db {db.sensor_id}", "skip", f"{db.relative_path}: not opened from the host (container edge reads)",
                 f"check it inside the container: docker compose -p {compose_project_name(layout)} exec {service} "
                 "python -m sensor_manager --project-dir /project diagnostics")


def _database_check(stats: DatabaseStats, running: bool, now: float) -> Check:
    name = f"db {stats.sensor_id}"
    if not stats.exists:
        return Check(name, "warn" if running else "skip", f"{stats.path} does not exist yet", "start the sensor: ./sensor_manager.py start")
    if stats.error or stats.quick_check != "ok":
        return Check(name, "fail", f"{stats.path}: {stats.error or stats.quick_check}",
                     "stop the sensor and start it again: it moves a corrupt DB aside and starts a new one")
    parts = [f"quick_check ok, {stats.rows} rows, seq {stats.first_seq}..{stats.last_seq}", f"WAL {stats.wal_bytes // 1024} KiB"]
    problems: list[tuple[Status, str, str]] = []
    if stats.missing_seqs > 0:
        where = f" (first after seq {stats.first_gap_after})" if stats.first_gap_after is not None else ""
        problems.append(("fail", f"{stats.missing_seqs} seq values missing{where}: rows were lost",
                         "a seq gap always means loss; check the sensor's log for write errors"))
    if stats.wal_bytes > WAL_WARN_BYTES:
        problems.append(("warn", "WAL above 64 MiB", "a long-running reader blocks checkpoints; stop stuck queries or restart the uploader"))
    written = iso_epoch(stats.last_timestamp)
    if written is not None:
        parts.append(f"last write {int(now - written)} s ago")
        if written > now + CLOCK_TOLERANCE_SECONDS:
            problems.append(("warn", f"last reading is {written - now:.0f} s in the future", "the sensor clock runs ahead: sync the host clock (NTP)"))
    status: Status = "fail" if any(p[0] == "fail" for p in problems) else "warn" if problems else "pass"
    return Check(name, status, "; ".join([*[p[1] for p in problems], *parts]), "; ".join(p[2] for p in problems))


# --- disk, lake, lag, dead letters ------------------------------------------------------------------


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _disk(layout: ProjectLayout) -> list[Check]:
    checks = []
    for label, path in (("data", layout.data), ("lake", lake.table_path(layout))):
        free = shutil.disk_usage(_existing_parent(path)).free
        status: Status = "fail" if free < FREE_FAIL_BYTES else "warn" if free < FREE_WARN_BYTES else "pass"
        checks.append(Check(f"disk {label}", status, f"{free / 1024**3:.1f} GiB free at {_existing_parent(path)}",
                            "" if status == "pass" else "free space: sensors stop writing on a full disk"))
    return checks


def _lake(layout: ProjectLayout) -> list[Check]:
    path = lake.table_path(layout)
    try:
        table = lake.open_table(layout)
        readable = Check("lake readable", "pass", f"{path} version {table.version()}") if table else Check(
            "lake readable", "skip", f"{path}: no table yet (nothing uploaded)")
        if table is not None:
            lake.city_stats(table)  # reads every entry of the log, as monitor and query do
    except LakeUnreadableError as exc:
        readable = Check("lake readable", "fail", f"{exc.path}: {exc.reason}", LAKE_REMEDY)
    except Exception as exc:  # any failure to read the Delta log is the finding itself
        readable = Check("lake readable", "fail", f"{path}: {str(exc).splitlines()[0]}", LAKE_REMEDY)
    return [readable, _lake_writable(path)]


def _lake_writable(path: Path) -> Check:
    """Create and remove one hidden temp file where the uploader writes (the table directory, else its nearest parent)."""
    target = path if path.is_dir() else _existing_parent(path)
    if target != path and not target.is_dir():
        return Check("lake writable", "fail", f"{target} is not a directory", f"move {target} away so the lake can be created")
    try:
        fd, probe = tempfile.mkstemp(dir=target, prefix=".diagnostics-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return Check("lake writable", "fail", f"{target}: {exc.strerror or exc}", f"make {target} writable for the uploader")
    return Check("lake writable", "pass", f"{target} accepts writes")


def _sinks(layout: ProjectLayout, config) -> list[Check]:
    """Each enabled sink's own check (the local lake has its own checks above); its message names the cause
    (region, access, bucket, clock) and the fix."""
    from sensor_manager.preflight import sink_checks

    if config is None:
        return []
    lake_checked = frozenset({layout.lake / "sensor_readings"})
    return [Check(c.name, "pass" if c.ok else "fail", c.detail,
                  "" if c.ok else f"change what the message names (uploader.sinks.{c.name.removeprefix('sink ')} "
                                  "or the AWS_* environment), then run diagnostics again") for c in sink_checks(config, layout, skip=lake_checked)]


def _lag(layout: ProjectLayout, plan: FleetPlan | None, running: bool, config, access: EdgeAccess | None = None) -> list[Check]:
    if not running:
        return [Check("uploader lag", "skip", "project not running: lag grows until it starts")]
    interval = float(getattr(getattr(config, "uploader", None), "interval_seconds", 30.0))
    threshold = max(LAG_WARN_SECONDS, 3 * interval + 60)
    checks = []
    watch = Monitor(layout, plan, access)
    try:
        cities = watch.refresh().cities
    except LakeUnreadableError:
        return [Check("uploader lag", "skip", "the lake cannot be read (see lake readable)")]
    finally:
        watch.close()
    for city in cities:
        lagging = city.lag_seconds is not None and city.lag_seconds > threshold
        checks.append(Check(f"lag {city.city}", "warn" if lagging else "pass",
                            f"{city.lag_rows} rows, oldest {city.lag_seconds or 0:.0f} s (threshold {threshold:.0f} s), uploader {city.uploader_state}",
                            f"check `./sensor_manager.py logs uploader-{city.city.lower().replace('_', '-')}`" if lagging else ""))
    return checks


# --- the Cosmos sink ---------------------------------------------------------------------------------

COSMOS_CONNECT_SECONDS = 5.0
# The seed's README spent a page on this: inside a container, the host's resolver is not the container's.
COSMOS_DNS_REMEDY = (
    "check the account name in the endpoint; if it resolves on the host but not inside a container, the "
    "container uses Docker's resolver: test with `docker run --rm busybox nslookup <host>`, give the engine a "
    "reachable DNS server (dockerd --dns, or \"dns\" in /etc/docker/daemon.json), and check VPN or corporate "
    "DNS that only the host sees")
COSMOS_PORT_REMEDY = ("check the endpoint's port (443 for Azure; the local emulator's own port), firewalls and "
                      "proxies between here and the account (outbound TCP to the account must be allowed)")
# azure-cosmos never verifies certificates for these hosts (its emulator rule), whatever verify_tls says.
SDK_UNVERIFIED_HOSTS = ("localhost", "127.0.0.1")
COSMOS_TLS_REMEDY = ("a proxy re-signing TLS needs its CA in the system store; verify_tls: false "
                     "(COSMOS_VERIFY_TLS=false) is accepted only for a loopback test server")


def cosmos_checks(config) -> list[Check]:
    """The enabled Cosmos sink's account (see `cosmos_account_checks`)."""
    if config is None or not config.uploader.sinks.named("cosmos").enabled:
        return []
    return cosmos_account_checks(config.uploader.sinks.named("cosmos"))


def cosmos_account_checks(settings, open_client: Callable[[Any], Any] | None = None) -> list[Check]:
    """One check each: endpoint (DNS, port, TLS), key, database, container, partition key.

    Each check after a failed one is skipped (it could only fail the same way)."""
    checks = [cosmos_endpoint_check(settings)]
    if checks[0].status == "fail":
        return checks + [Check(name, "skip", "the endpoint is not reachable") for name in COSMOS_LATER_CHECKS]
    client, key = _cosmos_client(settings, open_client or _open_cosmos_client)
    checks.append(key)
    if client is None:
        return checks + [Check(name, "skip", "the key was not accepted") for name in COSMOS_LATER_CHECKS[1:]]
    database = cosmos_database_check(client, settings)
    checks.append(database)
    if database.status != "pass":
        return checks + [Check(name, "skip", "no database") for name in COSMOS_LATER_CHECKS[2:]]
    container, properties = cosmos_container_check(client, settings)
    return checks + [container, cosmos_partition_key_check(properties, settings)]


COSMOS_LATER_CHECKS = ("cosmos key", "cosmos database", "cosmos container", "cosmos partition key")


def cosmos_endpoint_check(settings) -> Check:
    """DNS, then a TCP connection, then (https) the TLS handshake, each failure with its own remedy."""
    import socket
    import ssl
    from urllib.parse import urlsplit

    parts = urlsplit(settings.endpoint or "")
    host, secure = parts.hostname or "", parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    try:
        address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][0]
    except (socket.gaierror, UnicodeError) as exc:
        return Check("cosmos endpoint", "fail", f"{host}: the name does not resolve ({exc})", COSMOS_DNS_REMEDY)
    try:
        connection = socket.create_connection((host, port), timeout=COSMOS_CONNECT_SECONDS)
    except OSError as exc:
        return Check("cosmos endpoint", "fail", f"{host}:{port} ({address}): no connection ({exc.strerror or exc})", COSMOS_PORT_REMEDY)
    with connection:
        if not secure:
            return Check("cosmos endpoint", "pass", f"{host}:{port} ({address}) accepts connections (http, no TLS)")
        verified = settings.verify_tls and host not in SDK_UNVERIFIED_HOSTS  # what the SDK will do
        context = ssl.create_default_context()
        if not verified:
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        try:
            with context.wrap_socket(connection, server_hostname=host) as tls:
                version = tls.version()
        except ssl.SSLCertVerificationError as exc:
            return Check("cosmos endpoint", "fail", f"{host}:{port}: certificate not trusted ({exc.verify_message})", COSMOS_TLS_REMEDY)
        except (ssl.SSLError, OSError) as exc:
            return Check("cosmos endpoint", "fail", f"{host}:{port}: TLS handshake failed ({exc})", COSMOS_TLS_REMEDY)
    how = ("certificate verified" if verified else "certificate not verified (loopback, verify_tls: false)" if not settings.verify_tls
           else "certificate not verified (the SDK never verifies localhost or 127.0.0.1)")
    return Check("cosmos endpoint", "pass", f"{host}:{port} ({address}), {version}, {how}")


def _open_cosmos_client(settings):
    from uploader.sinks.cosmos_client import sync_client

    return sync_client(settings)


def _cosmos_client(settings, open_client: Callable[[Any], Any]) -> tuple[Any, Check]:
    """A client, and whether the key is accepted: the client reads the account, then the database (401/403 = refused)."""
    from azure.core.exceptions import AzureError
    from azure.cosmos.exceptions import CosmosHttpResponseError

    from sensor_manager.observe.cosmos_source import server_message

    try:
        client = open_client(settings)
        client.get_database_client(settings.database_name).read()
    except CosmosHttpResponseError as exc:
        if exc.status_code in (401, 403):
            return None, Check("cosmos key", "fail", f"{settings.endpoint} refused the key ({exc.status_code})",
                               "copy the primary (or secondary) key from the account's Keys page into COSMOS_KEY "
                               "(uploader.sinks.cosmos.key); a read-only key cannot upload")
        if exc.status_code != 404:
            return None, Check("cosmos key", "fail", f"{settings.endpoint} answered {exc.status_code}: {server_message(exc)}",
                               "run diagnostics again; if it persists, check the account's status in the Azure portal")
        return client, Check("cosmos key", "pass", "accepted")
    except AzureError as exc:
        return None, Check("cosmos key", "fail", f"{settings.endpoint}: {server_message(exc)}", COSMOS_PORT_REMEDY)
    return client, Check("cosmos key", "pass", "accepted")


def cosmos_database_check(client, settings) -> Check:
    from azure.cosmos.exceptions import CosmosResourceNotFoundError

    try:
        client.get_database_client(settings.database_name).read()
    except CosmosResourceNotFoundError:
        return _cosmos_missing("database", settings.database_name, settings)
    return Check("cosmos database", "pass", f"{settings.database_name} exists")


def cosmos_container_check(client, settings) -> tuple[Check, dict | None]:
    from azure.cosmos.exceptions import CosmosResourceNotFoundError

    try:
        properties = client.get_database_client(settings.database_name).get_container_client(settings.container_name).read()
    except CosmosResourceNotFoundError:
        return _cosmos_missing("container", settings.container_name, settings), None
    return Check("cosmos container", "pass", f"{settings.database_name}/{settings.container_name} exists"), properties


def _cosmos_missing(kind: str, name: str, settings) -> Check:
    if settings.create_if_missing:
        return Check(f"cosmos {kind}", "warn", f"{name} does not exist; the sink creates it at its first upload "
                     f"(create_if_missing: true{', partition key ' + settings.partition_key if kind == 'container' else ''})",
                     "on a provisioned-throughput account create it yourself to choose its throughput; "
                     "a serverless account needs nothing")
    return Check(f"cosmos {kind}", "fail", f"{name} does not exist and create_if_missing is false",
                 f"create the {kind} in the Azure portal"
                 f"{' with partition key ' + settings.partition_key if kind == 'container' else ''}, "
                 f"fix uploader.sinks.cosmos.{kind}_name, or set uploader.sinks.cosmos.create_if_missing: true")


def cosmos_partition_key_check(properties: dict | None, settings) -> Check:
    if properties is None:
        return Check("cosmos partition key", "skip", f"no container yet (it is created with {settings.partition_key})")
    paths = (properties.get("partitionKey") or {}).get("paths") or []
    if paths == [settings.partition_key]:
        return Check("cosmos partition key", "pass", f"{settings.partition_key}, as configured")
    actual = ", ".join(paths) or "none"
    return Check("cosmos partition key", "fail",
                 f"{settings.container_name} is partitioned by {actual}; uploader.sinks.cosmos.partition_key is {settings.partition_key}",
                 f"set uploader.sinks.cosmos.partition_key: {paths[0] if paths else '/city'} or choose a new "
                 "container_name (a container's partition key cannot change); every write would fail with 400 otherwise")


def _dead_letters(layout: ProjectLayout) -> Check:
    files = [p for p in _walk(layout.deadletter) if p.is_file()]
    if not files:
        return Check("dead letters", "pass", "none")
    return Check("dead letters", "warn", f"{len(files)} files under {layout.deadletter}", "rows a sink rejected, with the reason: inspect and replay or discard")


def _walk(path: Path) -> Iterable[Path]:
    return path.rglob("*") if path.is_dir() else []
