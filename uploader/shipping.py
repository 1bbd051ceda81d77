"""The namespace a source is shipped under: the app id sinks and checkpoints know it by.

app id = `sensor-manager/<project>/epoch-<fleet_epoch>/ship-<n>/<source path>@<generation>`.
A new fleet epoch (`reset`, or `--development`) or a new ship generation (a `clean` that asks for
history to be shipped again) therefore starts every source from its first row, without colliding with
what earlier namespaces shipped. The ship generation lives in the lake itself, as a Delta app
transaction of its own, so it survives the loss of any local state.
"""
from __future__ import annotations

from dataclasses import dataclass

from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from uploader.sources.sqlite import SourceKey

APP_PREFIX = "sensor-manager"


def ship_generation_app_id(project: str) -> str:
    return f"{APP_PREFIX}/{project}/ship-generation"


def read_ship_generation(table_uri: str, project: str) -> int:
    try:
        return DeltaTable(table_uri).transaction_version(ship_generation_app_id(project)) or 0
    except TableNotFoundError:
        return 0


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
