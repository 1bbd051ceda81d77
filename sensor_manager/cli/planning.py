"""`plan`, `config validate` and `config import-cosmos`: show the fleet, the resolved config, the seed's Cosmos
config mapped onto ours; none changes the project (import-cosmos writes only the new file --output names)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich import filesize

from sensor_manager.cli import app
from sensor_manager.cli.options import (
    AnomalyProbabilityOpt,
    CitiesOpt,
    CosmosConfigOpt,
    JsonOpt,
    MaxCitiesOpt,
    RateOpt,
    ReplanOpt,
    SeedOpt,
    SensorsPerCityOpt,
    session,
)

TABLE_ROWS = 500
PIPE_WIDTH = 100_000
SCHEMA_VERSION = 1

config_app = typer.Typer(help="Check the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


def _render_plan_table(document: dict[str, Any]) -> None:
    from rich.table import Table

    from sensor_manager.cli.output import info, results

    sensors = document["sensors"]
    table = Table(title=f"Fleet plan: {document['project']} (epoch {document['fleet_epoch']})")
    styles = {"sensor_id": "cyan", "city": "green"}
    for column in ("sensor_id", "city", "latitude", "longitude", "timezone", "device", "db_path"):
        table.add_column(column, justify="right" if column in ("latitude", "longitude") else "left", style=styles.get(column))
    for s in sensors[:TABLE_ROWS]:
        device = f"{s['manufacturer']} {s['model']} {s['firmware_version']}"
        table.add_row(s["sensor_id"], s["city"], f"{s['latitude']:.4f}", f"{s['longitude']:.4f}", s["timezone"], device, s["db_path"])
    console = results()
    if not console.is_terminal:
        console.width = PIPE_WIDTH  # a pipe or file has no width: print every cell whole, never "…"
    console.print(table)
    totals = document["totals"]
    console.print(
        f"{totals['sensors']} sensors in {totals['cities']} cities · {totals['readings_per_second']:g} readings/s"
        f" · ~{filesize.decimal(int(totals['disk_bytes_per_day']))}/day of edge-DB growth"
    )
    if len(sensors) > TABLE_ROWS:
        info(f"Showing the first {TABLE_ROWS} of {len(sensors)} sensors; --json lists them all.")


@app.command()
def plan(
    ctx: typer.Context,
    cities: CitiesOpt = None,
    max_cities: MaxCitiesOpt = None,
    sensors_per_city: SensorsPerCityOpt = None,
    rate: RateOpt = None,
    anomaly_probability: AnomalyProbabilityOpt = None,
    seed: SeedOpt = None,
    replan: ReplanOpt = False,
    json: JsonOpt = False,
) -> None:
    """Show the fleet the config describes (ids, places, devices, totals); writes nothing.

    Example: ./sensor_manager.py plan --cities Berlin,Paris --sensors-per-city 3 --json
    """
    from sensor_manager.plan import describe_plan

    s = session(
        ctx, json=json, cities=cities, max_cities=max_cities, sensors_per_city=sensors_per_city, rate=rate,
        anomaly_probability=anomaly_probability, seed=seed,
    )
    document = {"schema_version": SCHEMA_VERSION, **describe_plan(s.load_config(), s.layout, replan=replan)}
    if s.json:
        from sensor_manager.cli.output import print_json

        print_json(document)
    else:
        _render_plan_table(document)


@config_app.command("validate")
def validate(
    ctx: typer.Context,
    cities: CitiesOpt = None,
    max_cities: MaxCitiesOpt = None,
    sensors_per_city: SensorsPerCityOpt = None,
    rate: RateOpt = None,
    anomaly_probability: AnomalyProbabilityOpt = None,
    seed: SeedOpt = None,
    cosmos_config: CosmosConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """Check the config and print it resolved, secrets redacted; exit 0 valid, 2 invalid.

    Example: ./sensor_manager.py config validate --config my.yaml --json
    """
    from fleetcore.errors import ConfigError
    from sensor_manager.cli.output import info, print_json, results

    s = session(
        ctx, json=json, cities=cities, max_cities=max_cities,
        sensors_per_city=sensors_per_city, rate=rate, anomaly_probability=anomaly_probability, seed=seed,
        cosmos_config=cosmos_config,
    )
    try:
        cfg = s.load_config()
    except ConfigError as exc:
        if s.json:
            print_json({"schema_version": SCHEMA_VERSION, "valid": False, "errors": exc.problems})
        raise
    resolved = cfg.redacted()
    if s.json:
        print_json({"schema_version": SCHEMA_VERSION, "valid": True, "source": cfg.source_path, "config": resolved,
                    "notes": cfg.notes})
        return
    import yaml

    results().out(yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True), end="")
    info(f"✓ {cfg.source_path} is valid.", quiet=s.quiet)


@config_app.command("import-cosmos")
def import_cosmos(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The seed's cosmos-config.yaml (or its config/config.yaml).", metavar="FILE", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the YAML to this new file instead of stdout.", metavar="NEW_FILE", show_default=False)] = None,
) -> None:
    """Map the seed's Cosmos uploader config onto ours and print it as YAML for sensor-manager.yaml; keys with no equivalent are named on stderr.

    Example: ./sensor_manager.py config import-cosmos cosmos-config.yaml -o cosmos-section.yaml
    """
    from fleetcore.atomicfiles import write_atomic
    from fleetcore.errors import UsageError
    from sensor_manager.cli.output import info, results, warn
    from sensor_manager.config import KEY_VARIABLE, literal_key_replaced, read_seed_config, section_yaml

    s = session(ctx)
    mapping = read_seed_config(file, flag="config import-cosmos")
    if not s.quiet:
        for note in mapping.notes:
            warn(note)
    if literal_key_replaced(mapping):
        warn(f"{file}: cosmos.key is written as {KEY_VARIABLE}, not copied: set COSMOS_KEY in the environment or .env")
    text = section_yaml(mapping)
    if output is None:
        results().out(text, end="")
        return
    if output.exists():
        raise UsageError(f"--output {output}: already exists; name a new file (nothing was written)")
    write_atomic(output, text)
    info(f"Wrote {output}: merge it into sensor-manager.yaml, then run `config validate`.", quiet=s.quiet)
