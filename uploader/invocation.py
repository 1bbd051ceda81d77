"""What one uploader run works on, resolved from its flags, the project directory and the config.

Defaults: inside a project (`--project-dir`, or `--sqlite` under `<dir>/data`) the lake is
`<project>/lake`, the state root `<project>/state`, and project name, fleet epoch and ship generation
come from `state/plan.json` (an unreadable plan is an error, never epoch 1; a sensor DB recording another epoch
is refused by the pipeline); standalone they are `./lake`, `./.uploader-state`, "standalone" and epoch 1.
The uploader id defaults to the city directory of `--sqlite` as a slug (data/New_York → new-york).
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

from fleetcore.errors import UsageError
from fleetcore.naming import city_service_slug
from uploader.settings import UploaderSettings
from uploader.sinks.base import SinkContext
from uploader.sinks.delta import TABLE_NAME, DeltaSinkSettings
from uploader.sources.discovery import data_root_of

UPLOADER_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


@dataclass(frozen=True)
class Invocation:
    sqlite: Path
    data_root: Path
    project_dir: Path | None
    project: str
    fleet_epoch: int
    uploader_id: str
    lake: Path
    state_root: Path
    settings: UploaderSettings
    continuous: bool = False
    interval: float = 30.0
    development: bool = False
    ship_generation: int = 0  # `clean --reship` moves the plan to a new one: every source ships from its first row
    # Settings read from a file (python -m uploader --config): the running uploader applies its changes.
    settings_file: Path | None = None
    settings_digest: str | None = None
    settings_project: str | None = None

    @property
    def sink_context(self) -> SinkContext:
        return SinkContext(lake=self.lake, project_dir=self.project_dir, stage=self.settings.stage,
                           window=self.settings.aggregated.table_suffix.removeprefix("_"),
                           development=self.development)

    def sink_context_for(self, sink: str) -> SinkContext:
        """The context a sink is built with: its own stage (`uploader.sinks.<name>.stage`, else uploader.stage)."""
        return replace(self.sink_context, stage=self.settings.stage_of(sink))

    @property
    def table_uri(self) -> str:
        """The local Delta table (the delta sink's location, whether or not it is enabled)."""
        delta = self.settings.sinks.named("delta")
        assert isinstance(delta, DeltaSinkSettings)
        return str(self.sink_context.local(delta.path, self.lake / TABLE_NAME))

    @property
    def status_path(self) -> Path:
        return self.state_root / "status" / f"uploader-{self.uploader_id}.json"


def project_dir_of(sqlite: Path) -> Path | None:
    """The project whose data/ holds `sqlite`, if any."""
    for parent in sqlite.resolve().parents:
        if parent.name == "data":
            return parent.parent
    return None


class PlanIdentity(NamedTuple):
    project: str
    fleet_epoch: int
    ship_generation: int = 0


def read_plan_identity(project_dir: Path, *extra_plans: Path) -> PlanIdentity | None:
    """Project, fleet epoch and ship generation from state/plan.json (else the first of `extra_plans` that exists), or None.

    A plan that exists but cannot be read is an error, never "no plan": falling back to epoch 1 would
    ship every reading again under the wrong epoch."""
    for path in (project_dir / "state" / "plan.json", *extra_plans):
        try:
            plan = json.loads(path.read_text(encoding="utf-8"))
            return PlanIdentity(str(plan["project"]), int(plan["fleet_epoch"]), int(plan.get("ship_generation", 0)))
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{path}: cannot read the stored plan ({type(exc).__name__}: {exc}); the fleet epoch "
                             "comes from it: restore it, or move it away and run `start` (which recovers the "
                             "epoch from the sensor DBs)") from None
    return None


def default_uploader_id(sqlite: Path, data_root: Path, in_project: bool) -> str:
    resolved = sqlite.resolve()
    if in_project and resolved != data_root and resolved.is_relative_to(data_root):
        return city_service_slug(resolved.relative_to(data_root).parts[0]) or "default"
    return "default"


def resolve_invocation(
    *, sqlite: Path, settings: UploaderSettings, config_project: str | None = None,
    project_dir: Path | None = None, uploader_id: str | None = None, lake: Path | None = None,
    state_dir: Path | None = None, continuous: bool = False, interval: float | None = None,
    development: bool = False, config_path: Path | None = None, settings_digest: str | None = None,
) -> Invocation:
    if not sqlite.exists() and not continuous:  # a service may start before its sensors create their folders
        raise UsageError(f"--sqlite {sqlite}: no such file or directory; give a sensor_data.db or a directory holding some.")
    delta = settings.sinks.named("delta")
    for remote in (lake, delta.path if isinstance(delta, DeltaSinkSettings) else None):
        if remote is not None and re.match(r"^[a-z][a-z0-9+]*:/", str(remote)):
            raise UsageError(f"lake {remote}: object-store lakes are not supported yet (they need a locking provider or "
                             "conditional puts for concurrent uploaders); use a local directory.")
    project = project_dir.expanduser().resolve() if project_dir else project_dir_of(sqlite)
    data_root = data_root_of(sqlite, project / "data" if project else None)
    # A container sees the plan beside its rendered config (/config/plan.json), not under state/.
    beside_config = [config_path.parent / "plan.json"] if config_path else []
    identity = read_plan_identity(project, *beside_config) if project else None
    name, epoch, ship_generation = identity or PlanIdentity((config_project or "standalone") if project else "standalone", 1)
    if development:
        epoch = int(time.time())  # a fresh epoch: the demo replays without colliding with earlier keys
    chosen_id = uploader_id or default_uploader_id(sqlite, data_root, project is not None)
    if not UPLOADER_ID.fullmatch(chosen_id):
        raise UsageError(f"--uploader-id {chosen_id!r}: use lowercase letters, digits and '-' (e.g. new-york).")
    return Invocation(
        sqlite=sqlite.resolve(), data_root=data_root, project_dir=project, project=name, fleet_epoch=epoch,
        uploader_id=chosen_id,
        lake=(lake or (project / "lake" if project else Path("lake"))).expanduser().resolve(),
        state_root=(state_dir or (project / "state" if project else Path(".uploader-state"))).expanduser().resolve(),
        settings=settings, continuous=continuous,
        interval=interval if interval is not None else settings.interval_seconds, development=development,
        ship_generation=ship_generation,
        settings_file=config_path.resolve() if config_path and settings_digest else None, settings_digest=settings_digest,
        settings_project=config_project,
    )

