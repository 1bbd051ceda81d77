"""The namespace a source is shipped under: the app id sinks and checkpoints know it by.

app id = `sensor-manager/<project>/epoch-<fleet_epoch>/ship-<n>/<source path>@<generation>`.
A new fleet epoch (`reset`, or `--development`) or a new ship generation (a `clean` that asks for
history to be shipped again) therefore starts every source from its first row, without colliding with
what earlier namespaces shipped. Both live in the plan (`state/plan.json`), beside the project name:
which sinks are enabled never changes what a source is called.
"""
from __future__ import annotations

from dataclasses import dataclass

from uploader.sources.sqlite import SourceKey

APP_PREFIX = "sensor-manager"


@dataclass(frozen=True)
class ShipNamespace:
    project: str
    fleet_epoch: int
    ship_generation: int = 0

    @property
    def prefix(self) -> str:
        return f"{APP_PREFIX}/{self.project}/epoch-{self.fleet_epoch}/ship-{self.ship_generation}/"

    def app_id(self, key: SourceKey) -> str:
        return f"{self.prefix}{key.path}@{key.generation}"


def parse_app_id(app_id: str) -> tuple[ShipNamespace, SourceKey] | None:
    """The namespace and source an app id names; None for any other app id (e.g. the ship generation's)."""
    head, _, rest = app_id.partition("/epoch-")
    epoch, _, rest = rest.partition("/ship-")
    ship, _, source = rest.partition("/")
    path, at, generation = source.rpartition("@")
    if not (head.startswith(f"{APP_PREFIX}/") and epoch.isdigit() and ship.isdigit() and at and path):
        return None
    return ShipNamespace(head.removeprefix(f"{APP_PREFIX}/"), int(epoch), int(ship)), SourceKey(path, generation)


def namespace_prefix(project: str, fleet_epoch: int | None = None) -> str:
    """The start of every app id of a project (of one fleet epoch, if given)."""
    return f"{APP_PREFIX}/{project}/" + (f"epoch-{fleet_epoch}/" if fleet_epoch is not None else "")


def source_of_app_id(app_id: str) -> tuple[str, str]:
    """(source path, generation) of an app id made by `ShipNamespace.app_id`."""
    path, _, generation = app_id.split("/", 4)[-1].rpartition("@")
    return path, generation
