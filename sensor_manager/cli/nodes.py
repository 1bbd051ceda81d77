"""`nodes` and `nodes label`: the swarm's nodes and which cities run where (→ runtimes/topology.py)."""
from __future__ import annotations

from typing import Annotated, List

import typer

from sensor_manager.cli import app
from sensor_manager.cli.options import JsonOpt, session

SCHEMA_VERSION = 1

nodes_app = typer.Typer(help="The swarm's nodes, their city labels, and where each city runs (swarm runtime).",
                        invoke_without_command=True)
app.add_typer(nodes_app, name="nodes")


def _show(ctx: typer.Context, json: bool) -> None:
    from sensor_manager.cli.output import print_json, results
    from sensor_manager.runtimes import topology

    s = session(ctx, json=json)
    report = topology.nodes_report(s.layout, s.load_config())
    if s.json:
        print_json({"schema_version": SCHEMA_VERSION, **report.to_dict()})
        return
    console = results()
    for node in report.nodes:
        cities = [c for c, hosts in report.placement.items() if node.hostname in hosts]
        labels = ",".join(f"{k}={v}" for k, v in sorted(node.labels.items())) or "-"
        console.out(f"{node.hostname}  {node.role}  {node.state}/{node.availability}  labels: {labels}  "
                    f"cities: {', '.join(cities) or '-'}", highlight=False)
    nowhere = [city for city, hosts in report.placement.items() if not hosts]
    if nowhere:
        console.out(f"No node for: {', '.join(nowhere)} (./sensor_manager.py nodes label NODE --city CITY)", highlight=False)


@nodes_app.callback()
def nodes(ctx: typer.Context, json: JsonOpt = False) -> None:
    """List the swarm's nodes, their labels and the cities that land on each (`nodes list`)."""
    if ctx.invoked_subcommand is None:
        _show(ctx, json)


@nodes_app.command("list")
def list_nodes(ctx: typer.Context, json: JsonOpt = False) -> None:
    """List the swarm's nodes, their labels and the planned cities that would run on each.

    Example: ./sensor_manager.py nodes list --json
    """
    _show(ctx, json)


@nodes_app.command("label")
def label(
    ctx: typer.Context,
    node: Annotated[str, typer.Argument(help="Node hostname or id.", show_default=False)],
    city: Annotated[List[str], typer.Option("--city", help="City to place on the node (repeatable).", show_default=False)],
    remove: Annotated[bool, typer.Option("--remove", help="Remove the city labels instead.")] = False,
    json: JsonOpt = False,
) -> None:
    """Label a node for cities (io.sensor-manager.city.<City>=true): their services may run there.

    Example: ./sensor_manager.py nodes label edge-ams-1 --city Amsterdam
    """
    from sensor_manager.cli.output import info, print_json
    from sensor_manager.runtimes import topology
    from sensor_manager.runtimes.engine import docker_client

    s = session(ctx, json=json)
    result = topology.label_node(docker_client(), node, city, remove=remove)
    if s.json:
        print_json({"schema_version": SCHEMA_VERSION, "hostname": result.hostname, "labels": result.labels,
                    "cities": result.labelled_cities})
    else:
        info(f"{result.hostname}: cities {', '.join(result.labelled_cities) or 'none'}.", s.quiet)
