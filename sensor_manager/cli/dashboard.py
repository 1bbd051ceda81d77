"""`dashboard` (the fleet live in a browser) and `metrics` (the Prometheus exposition once) → sensor_manager/dashboard/."""
from __future__ import annotations

import sys
import webbrowser
from typing import Annotated, Optional

import typer

from sensor_manager.cli import app
from sensor_manager.cli.options import session
from sensor_manager.cli.output import info
from sensor_manager.plan import load_plan


@app.command("dashboard")
def dashboard(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on; anything but loopback needs a token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on (0: a free one; the URL is printed).", min=0, max=65535)] = 8050,
    token: Annotated[Optional[str], typer.Option("--token", help="Token every request must carry (default beyond loopback: a generated one, printed in the URL).", show_default=False)] = None,
    open_: Annotated[bool, typer.Option("--open", help="Open the page in a browser.")] = False,
) -> None:
    """Serve a live page of the fleet (map, city cards, charts) and /metrics; read-only, no internet needed.

    Example: ./sensor_manager.py dashboard --open
    """
    from sensor_manager.dashboard import server
    opts = session(ctx)
    required, generated = server.access_token(host, token)
    sock = server.bind(host, port)
    app_ = server.create_app(opts.layout, required)
    page = server.url(sock, host, required)
    if generated:
        info(f"--host {host} is not loopback: every request needs the generated token below (or pass --token).", opts.quiet)
    sys.stdout.write(page + "\n")
    sys.stdout.flush()
    info("Dashboard running; Ctrl-C stops it. Prometheus can scrape /metrics on the same address.", opts.quiet)
    if open_:
        webbrowser.open(page)
    server.serve(app_, sock)


@app.command("metrics")
def metrics(
    ctx: typer.Context,
) -> None:
    """Print the fleet's Prometheus metrics once (the text `dashboard` serves on /metrics).

    Example: ./sensor_manager.py metrics | grep component_sent_events_total
    """
    from sensor_manager.dashboard.metrics import AnomalyCounts, exposition
    from sensor_manager.observe.monitor import Monitor
    layout = session(ctx).layout
    watch = Monitor(layout, load_plan(layout))
    try:
        text = exposition(layout, watch.refresh(), watch.databases, AnomalyCounts() if watch.access.host else None)
    finally:
        watch.close()
    sys.stdout.write(text.decode())
