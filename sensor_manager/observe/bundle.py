"""`diagnostics --bundle FILE.tar.gz`: what a bug report needs, with no secret value in it.

Members: diagnostics.json, config.json (redacted), plan.json, runtime.json, status/*.json (redacted),
logs/<service>.log (the last lines of each), databases.json (per-DB stats). Secret-named config keys
go through `config.redact`; on top of that every secret *value* known here (config secrets, files in
state/secrets/, secret-named environment variables) is replaced by `***` wherever it appears, so a
key echoed into a log line or an error message does not leak either.
"""
from __future__ import annotations

import io
import json
import os
import tarfile
import time
from pathlib import Path
from typing import Any

from sensor_manager.config import REDACTED, is_secret_key, redact
from sensor_manager.layout import ProjectLayout
from sensor_manager.observe.access import edge_access
from sensor_manager.observe.diagnostics import Report, database_stats
from sensor_manager.observe.edge import edge_databases
from sensor_manager.plan import FleetPlan

LOG_TAIL_LINES = 200
LOG_TAIL_BYTES = 256 * 1024
MIN_SECRET_LENGTH = 4  # shorter values would blank out ordinary words


def secret_values(config: Any, layout: ProjectLayout) -> set[str]:
    values: set[str] = set()
    if config is not None:
        _collect(config.model_dump(mode="json"), values)
    if layout.secrets.is_dir():
        for path in layout.secrets.iterdir():
            try:
                values.add(path.read_text().strip())
            except (OSError, UnicodeDecodeError):
                continue
    values.update(v for k, v in os.environ.items() if is_secret_key(k))
    return {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH}


def _collect(node: Any, values: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if is_secret_key(str(key)) and isinstance(value, str):
                values.add(value)
            else:
                _collect(value, values)
    elif isinstance(node, list):
        for item in node:
            _collect(item, values)


def _scrub(text: str, secrets: set[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def _tail(path: Path) -> str:
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - LOG_TAIL_BYTES))
        lines = handle.read().decode("utf-8", "replace").splitlines()
    return "\n".join(lines[-LOG_TAIL_LINES:]) + "\n"


def _json(document: Any) -> str:
    return json.dumps(document, indent=2, default=str) + "\n"


def bundle_members(layout: ProjectLayout, report: Report, config: Any, plan: FleetPlan | None) -> dict[str, str]:
    """Member name -> text, before scrubbing."""
    members = {"diagnostics.json": _json(report.to_json())}
    members["config.json"] = _json(redact(config.model_dump(mode="json")) if config is not None else {"error": "config did not load; see diagnostics.json"})
    for name, path in (("plan.json", layout.plan_file), ("runtime.json", layout.runtime_file)):
        if path.is_file():
            members[name] = path.read_text(errors="replace")
    for path in sorted(layout.status_dir.glob("*.json")) if layout.status_dir.is_dir() else []:
        try:
            members[f"status/{path.name}"] = _json(redact(json.loads(path.read_text())))
        except (OSError, ValueError):
            members[f"status/{path.name}"] = "unreadable\n"
    for path in sorted(layout.logs.glob("*.log")) if layout.logs.is_dir() else []:
        members[f"logs/{path.name}"] = _tail(path)
    # With container edge reads (Docker Desktop) the host never opens a live DB: no per-DB stats then.
    host = edge_access(layout).host
    members["databases.json"] = _json([vars(database_stats(db, layout.root)) for db in edge_databases(layout, plan)] if host else [])
    return members


def write_bundle(target: Path, layout: ProjectLayout, report: Report, config: Any, plan: FleetPlan | None) -> list[str]:
    """Write the tar.gz; return its member names."""
    secrets = secret_values(config, layout)
    members = {name: _scrub(text, secrets) for name, text in bundle_members(layout, report, config, plan).items()}
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:gz") as archive:
        for name, text in members.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"sensor-manager-bundle/{name}")
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            archive.addfile(info, io.BytesIO(data))
    return list(members)
