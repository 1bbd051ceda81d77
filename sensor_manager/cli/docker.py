"""`build` and `compose`: the container image and the compose stack of the docker runtime."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sensor_manager.cli import app
from sensor_manager.cli.options import (
    AnomalyProbabilityOpt,
    BaseImageOpt,
    CitiesOpt,
    DryRunOpt,
    JsonOpt,
    MaxCitiesOpt,
    NoTagOpt,
    ProjectNameOpt,
    RateOpt,
    ReplanOpt,
    SeedOpt,
    SensorsPerCityOpt,
    TagOpt,
    session,
)

SCHEMA_VERSION = 1


def _progress(quiet: bool):
    from sensor_manager.cli.output import messages

    console = messages()
    return (lambda line: None) if quiet else (lambda line: console.out(line, highlight=False))


@app.command()
def build(
    ctx: typer.Context,
    base_image: BaseImageOpt = None,
    tag: TagOpt = None,
    no_tag: NoTagOpt = False,
    push: Annotated[bool, typer.Option("--push", help="Push the image to --registry after building.")] = False,
    registry: Annotated[Optional[str], typer.Option("--registry", help="Registry to push to, e.g. ghcr.io/me (only with --push).", show_default=False)] = None,
    save: Annotated[Optional[Path], typer.Option("--save", help="Also write the image as a tarball to FILE (`docker load -i FILE` on nodes that cannot pull).", show_default=False)] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Rebuild every layer.")] = False,
    json: JsonOpt = False,
) -> None:
    """Build the sensor/uploader image offline from a local wheelhouse; prints its tag.

    Example: BASE_IMAGE=python:3.12-slim ./sensor_manager.py build
    """
    from sensor_manager.cli.output import print_json, results
    from sensor_manager.runtimes import image as images

    s = session(ctx, json=json)
    progress = _progress(s.quiet)
    result = images.build(s.layout, s.load_config(), base_image=base_image, tag=tag, no_tag=no_tag, no_cache=no_cache,
                          push=push, registry=registry, save=save, progress=progress)
    if s.json:
        print_json({"schema_version": SCHEMA_VERSION, "tag": result.tag, "image_id": result.image_id,
                    "built": result.built, "seconds": round(result.seconds, 3), "pushed": result.pushed,
                    "saved": result.saved})
    else:
        results().out(result.tag)
        if not result.built:
            progress(f"{result.tag} is up to date (use --no-cache to rebuild).")


@app.command()
def compose(
    ctx: typer.Context,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Also write the compose file here.", show_default=False)] = None,
    project_name: ProjectNameOpt = None,
    tag: TagOpt = None,
    base_image: BaseImageOpt = None,
    replan: ReplanOpt = False,
    cities: CitiesOpt = None,
    max_cities: MaxCitiesOpt = None,
    sensors_per_city: SensorsPerCityOpt = None,
    rate: RateOpt = None,
    anomaly_probability: AnomalyProbabilityOpt = None,
    seed: SeedOpt = None,
    dry_run: DryRunOpt = False,
    json: JsonOpt = False,
) -> None:
    """Render the docker-compose stack from the plan to state/compose/docker-compose.yml; prints the path.

    Example: ./sensor_manager.py compose --sensors-per-city 2 --output stack.yml
    """
    from sensor_manager.cli.output import print_json, results
    from sensor_manager.runtimes.compose import compose_stack

    s = session(
        ctx, json=json, dry_run=dry_run, cities=cities, max_cities=max_cities, sensors_per_city=sensors_per_city,
        rate=rate, anomaly_probability=anomaly_probability, seed=seed,
    )
    result = compose_stack(s.layout, s.load_config(), project_name=project_name, tag=tag, base_image=base_image,
                           replan=replan, dry_run=s.dry_run, output=output, progress=_progress(s.quiet))
    if result.stack_text is not None:
        results().out(result.stack_text, end="", highlight=False)
    elif s.json:
        print_json({"schema_version": SCHEMA_VERSION, "project_name": result.project_name, "image": result.image,
                    "compose_file": str(result.compose_file), "output": str(result.output) if result.output else None,
                    "services": result.services})
    else:
        for path in filter(None, (result.compose_file, result.output)):
            results().out(str(path), highlight=False)
