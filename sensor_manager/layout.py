"""The project directory: where data, lake, archive and state live. Every component asks here for paths."""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ProjectLayout:
    """Paths under one project directory (`--project-dir`, default: the repo root).

    Layout (a contract; ARCHITECTURE.md documents it):
      data/<City>/<CODE>/sensor_data.db   edge DBs, written only by their sensor
      archive/  lake/                      central-store outputs
      state/plan.json  state/runtime.json
      state/status/<role>-<name>.json      status files (see fleetcore/statusfiles.py)
      state/checkpoints/ locks/ logs/ deadletter/ secrets/ (0700)
    The lake table is `lake/sensor_readings` unless the config's `uploader.sinks.delta.path` says
    otherwise (`with_delta_path`).
    """

    root: Path
    delta_path: Path | None = None

    @classmethod
    def at(cls, project_dir: str | os.PathLike[str] | None) -> "ProjectLayout":
        return cls(Path(project_dir).expanduser().resolve() if project_dir else REPO_ROOT)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def lake_table(self) -> Path:
        return self.delta_path or self.lake / "sensor_readings"

    def with_delta_path(self, configured: str | None) -> "ProjectLayout":
        """This layout with the lake table where `uploader.sinks.delta.path` puts it (relative: to the project)."""
        if not configured:
            return self
        path = Path(configured).expanduser()
        return replace(self, delta_path=path if path.is_absolute() else self.root / path)

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def plan_file(self) -> Path:
        return self.state / "plan.json"

    @property
    def runtime_file(self) -> Path:
        return self.state / "runtime.json"

    @property
    def status_dir(self) -> Path:
        return self.state / "status"

    @property
    def checkpoints(self) -> Path:
        return self.state / "checkpoints"

    @property
    def locks(self) -> Path:
        return self.state / "locks"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def secrets(self) -> Path:
        return self.state / "secrets"

    @property
    def deadletter(self) -> Path:
        return self.state / "deadletter"

    def status_file(self, role: str, name: str) -> Path:
        return self.status_dir / f"{role}-{name}.json"

    def sensor_dir(self, safe_city: str, code: str) -> Path:
        return self.data / safe_city / code

    def ensure_state(self) -> None:
        """Create the state tree; secrets/ is owner-only."""
        for path in (self.status_dir, self.checkpoints, self.locks, self.logs, self.deadletter):
            path.mkdir(parents=True, exist_ok=True)
        self.secrets.mkdir(parents=True, exist_ok=True)
        os.chmod(self.secrets, 0o700)
