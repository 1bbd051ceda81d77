"""`plan` and `config validate`: show the fleet and the resolved config; neither writes anything."""
from __future__ import annotations

from typing import Any

import typer
from rich import filesize

from sensor_manager.cli import app
from sensor_manager.cli.options import (
    AnomalyProbabilityOpt,
    CitiesOpt,
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
    )
    try:
        cfg = s.load_config()
    except ConfigError as exc:
        if s.json:
            print_json({"schema_version": SCHEMA_VERSION, "valid": False, "errors": exc.problems})
        raise
    resolved = cfg.redacted()
    if s.json:
        print_json({"schema_version": SCHEMA_VERSION, "valid": True, "source": cfg.source_path, "config": resolved})
        return
    import yaml

    results().out(yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True), end="")
    info(f"✓ {cfg.source_path} is valid.", quiet=s.quiet)
