"""Options shared by every command, defined once, and the Session that resolves them.

`--config`, `--project-dir`, `--quiet` and `--verbose` may stand before the command (the app callback
stores them) or after it (`accept_shared_options` adds them to every command); the one given after
the command wins.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
import typer.main

from sensor_manager.cli.output import set_verbose, warn
from sensor_manager.layout import ProjectLayout

log = logging.getLogger(__name__)

ConfigOpt = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="Config file (default: $SENSOR_MANAGER_CONFIG, <project-dir>/sensor-manager.yaml, then the bundled one).", show_default=False),
]
ProjectDirOpt = Annotated[
    Optional[Path],
    typer.Option("--project-dir", help="Directory holding data/, lake/, archive/ and state/ (default: the repo root).", show_default=False),
]
CosmosConfigOpt = Annotated[
    Optional[Path],
    typer.Option("--cosmos-config", help="The seed's cosmos-config.yaml, mapped onto uploader.sinks.cosmos over the config (keys with no equivalent are named; see docs/cosmos-from-seed.md).", metavar="FILE", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="More detail on stderr.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show what would happen; change nothing.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Confirm a destructive action without asking.")]

# Fleet-shaping flags accepted by plan, start, compose and simulate.
CitiesOpt = Annotated[Optional[str], typer.Option("--cities", help="Comma-separated subset of cities (case-insensitive).", show_default=False)]
MaxCitiesOpt = Annotated[Optional[int], typer.Option("--max-cities", help="Use only the first N cities.", show_default=False)]
SensorsPerCityOpt = Annotated[Optional[int], typer.Option("--sensors-per-city", help="Sensors in each city.", show_default=False)]
RateOpt = Annotated[Optional[float], typer.Option("--rate", "--readings-per-second", help="Readings per second per sensor.", show_default=False)]
AnomalyProbabilityOpt = Annotated[Optional[float], typer.Option("--anomaly-probability", help="Expected fraction of readings inside an anomaly.", show_default=False)]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Fleet seed (ids, values, anomalies).", show_default=False)]
ReplanOpt = Annotated[bool, typer.Option("--replan", help="Use the plan the config gives even when it changes the stored one (removed sensors' data is kept).")]

# Docker image and project flags accepted by start, build and compose (the seed's --tag/--uploader-tag map here).
BaseImageOpt = Annotated[Optional[str], typer.Option("--base-image", help="Base image with python3 for a build (default: $BASE_IMAGE, then python:3.12-slim).", show_default=False)]
TagOpt = Annotated[Optional[str], typer.Option("--tag", "--uploader-tag", help="Image tag to use instead of <version>-<content hash> (never 'latest').", show_default=False)]
NoTagOpt = Annotated[bool, typer.Option("--no-tag", help="Only the content tag (the default; kept from the old CLI).")]
ProjectNameOpt = Annotated[Optional[str], typer.Option("--project-name", "-p", help="Compose project name (default: sm-<project dir>-<path hash>; later commands reuse it).", show_default=False)]


def accept_shared_options(group: Any) -> None:
    """Give every command of the click `group` --config, --project-dir, -q/--quiet and -v/--verbose.

    Declared here once: a command that does not declare one itself gets it as an option that folds
    into GlobalOptions (the one given after the command name wins), which `session()` reads. Flags
    also lose the `<bool>` type column in --help: a flag takes no value.
    """
    for command in [group, *group.commands.values()]:
        if command is not group and hasattr(command, "commands"):
            accept_shared_options(command)
            continue
        declared = {param.name for param in command.params}
        if command is not group:
            for param in _shared_params():
                if param.name not in declared:
                    param.expose_value = False
                    param.callback = _fold_into_global_options
                    command.params.append(param)
        _hide_flag_types(command)


def _hide_flag_types(command: Any) -> None:
    for param in command.params:
        if getattr(param, "is_flag", False):
            param.metavar = ""  # typer shows `<bool>` otherwise
    add_help_option = command.get_help_option  # click creates --help lazily, per command

    def get_help_option(ctx: Any) -> Any:
        option = add_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option


def _shared_params() -> list[Any]:
    # Built by typer itself from the shared annotations, so they parse and render like every other option.
    probe = typer.Typer(add_completion=False)

    @probe.command()
    def _probe(config: ConfigOpt = None, project_dir: ProjectDirOpt = None, quiet: QuietOpt = False, verbose: VerboseOpt = False) -> None:
        """Unused: only its parameters are taken."""

    return list(typer.main.get_command(probe).params)


def _fold_into_global_options(ctx: Any, param: Any, value: Any) -> None:
    outer = ctx.find_object(GlobalOptions)
    if value and outer is not None:
        setattr(outer, param.name, value)


@dataclass
class GlobalOptions:
    """The shared options: set by the app callback (before the command name), then by those after it."""

    config: Path | None = None
    project_dir: Path | None = None
    quiet: bool = False
    verbose: bool = False
    traceback: bool = False


@dataclass
class Session:
    """Resolved options of one command invocation."""

    config_path: Path | None
    project_dir: Path | None
    json: bool = False
    quiet: bool = False
    verbose: bool = False
    dry_run: bool = False
    yes: bool = False
    fleet_overrides: dict[str, Any] = field(default_factory=dict)
    cosmos_config: Path | None = None

    @property
    def layout(self) -> ProjectLayout:
        return ProjectLayout.at(self.project_dir)

    def load_config(self):
        from sensor_manager.config import load_config

        config = load_config(self.config_path, self.layout.root, self.fleet_overrides, cosmos_config=self.cosmos_config)
        log.debug("config: %s (flag overrides: %s)", config.source_path, self.fleet_overrides or "none")
        if not self.quiet:
            for note in config.notes:
                warn(note)
        return config


def session(
    ctx: typer.Context,
    config: Path | None = None,
    project_dir: Path | None = None,
    *,
    json: bool = False,
    dry_run: bool = False,
    yes: bool = False,
    cities: str | None = None,
    max_cities: int | None = None,
    sensors_per_city: int | None = None,
    rate: float | None = None,
    anomaly_probability: float | None = None,
    seed: int | None = None,
    cosmos_config: Path | None = None,
) -> Session:
    """Merge a command's own options with the shared ones (given before or after the command name)."""
    outer = ctx.find_object(GlobalOptions) or GlobalOptions()
    overrides: dict[str, Any] = {}
    flags = {
        "--cities": ("select_cities", cities),
        "--max-cities": ("max_cities", max_cities),
        "--sensors-per-city": ("sensors_per_city", sensors_per_city),
        "--rate": ("simulation.readings_per_second", rate),
        "--anomaly-probability": ("anomalies.probability", anomaly_probability),
        "--seed": ("seed", seed),
    }
    for key, value in flags.values():
        if value is not None:
            overrides[key] = value
    resolved = Session(
        config_path=config or outer.config,
        project_dir=project_dir or outer.project_dir,
        json=json,
        quiet=outer.quiet,
        verbose=outer.verbose,
        dry_run=dry_run,
        yes=yes,
        fleet_overrides=overrides,
        cosmos_config=cosmos_config,
    )
    set_verbose(resolved.verbose)
    log.debug("project dir: %s", resolved.layout.root)
    return resolved
