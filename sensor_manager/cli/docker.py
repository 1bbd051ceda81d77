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
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Rebuild every layer.")] = False,
    json: JsonOpt = False,
) -> None:
    """Build the sensor/uploader image offline from a local wheelhouse; prints its tag.

    Example: BASE_IMAGE=python:3.12-slim ./sensor_manager.py build
    """
    from sensor_manager.cli.output import print_json, results
    from sensor_manager.errors import UsageError
    from sensor_manager.runtimes import image as images
    from sensor_manager.runtimes.compose_settings import docker_settings, resolve_base_image
    from sensor_manager.runtimes.engine import docker_client

    if push != bool(registry):
        raise UsageError("--push and --registry go together: `build --push --registry R` pushes to R; nothing is pushed otherwise")
    if tag and no_tag:
        raise UsageError("--tag and --no-tag exclude each other")
    images.validate_tag(tag)
    s = session(ctx, json=json)
    settings = docker_settings(s.load_config())
    progress = _progress(s.quiet)
    client = docker_client()
    result = images.build_image(
        client, s.layout, settings, base_image=resolve_base_image(settings, base_image), tag=tag, no_cache=no_cache, progress=progress
    )
    pushed = images.push_image(client, result.tag, registry, progress) if push else None
    if s.json:
        print_json({"schema_version": SCHEMA_VERSION, "tag": result.tag, "image_id": result.image_id,
                    "built": result.built, "seconds": round(result.seconds, 3), "pushed": pushed})
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
    from sensor_manager.errors import EngineUnavailableError
    from sensor_manager.plan import resolve_plan
    from sensor_manager.runtimes.compose import ComposeRuntime, ImageOptions
    from sensor_manager.runtimes import image as images
    from sensor_manager.runtimes.compose_render import collect_secrets, dump_stack, validate_project_name
    from sensor_manager.runtimes.compose_settings import docker_settings

    s = session(
        ctx, json=json, dry_run=dry_run, cities=cities,
        max_cities=max_cities, sensors_per_city=sensors_per_city, rate=rate, anomaly_probability=anomaly_probability, seed=seed,
    )
    images.validate_tag(tag)
    if project_name:
        validate_project_name(project_name)
    cfg = s.load_config()
    fleet = resolve_plan(cfg, s.layout, persist=not s.dry_run, replan=replan)
    runtime = ComposeRuntime(s.layout, project_name=project_name, image=ImageOptions(tag=tag, base_image=base_image), progress=_progress(s.quiet))
    try:
        image = f"{docker_settings(cfg).image_repository}:{tag}" if tag else runtime.image_tag(cfg)
    except EngineUnavailableError as exc:
        raise EngineUnavailableError(f"{exc}; the image tag hashes the base image, so without an engine pass --tag T") from None
    if s.dry_run:
        import os

        document, _ = runtime.stack(fleet, cfg, image, secrets=tuple(sorted(collect_secrets(cfg, os.environ))))
        results().out(dump_stack(document), end="", highlight=False)
        return
    runtime.render(fleet, cfg, image=image, output=output)
    paths = [str(runtime.compose_path)] + ([str(output.resolve())] if output and output.resolve() != runtime.compose_path else [])
    if s.json:
        print_json({"schema_version": SCHEMA_VERSION, "project_name": runtime.project_name, "image": image,
                    "compose_file": paths[0], "output": paths[1] if len(paths) > 1 else None,
                    "services": [service.name for service in runtime.services(fleet, cfg)]})
    else:
        for path in paths:
            results().out(path, highlight=False)

