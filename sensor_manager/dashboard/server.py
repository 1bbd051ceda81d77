"""The dashboard's web server: a read-only Starlette app; one monitor refreshed every second feeds every page.

Routes: `/` the page, `/static/...` its files (uPlot and the land outlines are vendored: no CDN),
`/events` server-sent events (one tick per refresh), `/api/sensors`, `/api/sensors/<id>/readings`,
`/metrics` (Prometheus). Beyond loopback every request needs the token: `?token=` (the page's URL; it
then gets an HttpOnly cookie for its own requests), the cookie, or `Authorization: Bearer`. Without a
token the server answers only requests addressed to a loopback name (no DNS rebinding).
"""
from __future__ import annotations

import asyncio
import errno
import hmac
import ipaddress
import json
import secrets
import signal
import socket
import time
from contextlib import asynccontextmanager
from http.cookies import SimpleCookie
from importlib.resources import files
from pathlib import Path
from urllib.parse import parse_qs

import anyio
import uvicorn
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from fleetcore.errors import SensorManagerError, UsageError
from sensor_manager.dashboard import feed
from sensor_manager.dashboard.metrics import AnomalyCounts, exposition
from sensor_manager.layout import ProjectLayout
from sensor_manager.observe.monitor import Monitor, Snapshot
from sensor_manager.plan import load_plan

TICK_SECONDS = 1.0
COOKIE = "sm_dashboard_token"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
STATIC = Path(str(files("sensor_manager.dashboard") / "static"))


class PortInUseError(SensorManagerError):
    """The address the dashboard should listen on is taken."""


def is_loopback(host: str) -> bool:
    if host.strip("[]") in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def access_token(host: str, token: str | None) -> tuple[str | None, bool]:
    """(the token requests must carry, whether it was generated): a non-loopback bind never runs open."""
    if token is not None and not token.strip():
        raise UsageError("--token: must not be empty")
    if token or is_loopback(host):
        return token, False
    return secrets.token_urlsafe(18), True


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: a free one), or PortInUseError with the remedy."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(f"--port {port}: {host}:{port} is already in use; stop what listens there, "
                                 "or pick another port (--port 0 takes a free one)") from None
        raise UsageError(f"--host {host} --port {port}: cannot listen there: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def url(sock: socket.socket, host: str, token: str | None) -> str:
    port = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host.strip('[]')}]" if ":" in host else host)
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


class Ticker:
    """Refreshes one monitor every tick (in a thread) and wakes every event stream."""

    def __init__(self, layout: ProjectLayout):
        self.layout = layout
        self.plan = load_plan(layout)
        self._plan_mtime = self._mtime()
        self.monitor = Monitor(layout, self.plan)
        self.anomalies = AnomalyCounts() if self.monitor.access.host else None
        self.version = 1  # the tick `create_app` takes
        self._changed = asyncio.Condition()
        self.snapshot: Snapshot
        self.payload: str
        self.step()  # the first refresh before the server listens, so its errors reach the CLI

    def _mtime(self) -> float | None:
        try:
            return self.layout.plan_file.stat().st_mtime
        except OSError:
            return None

    def _refresh(self) -> Snapshot:
        if self._mtime() != self._plan_mtime:  # `start` grew the fleet or `reset` bumped the epoch
            self.monitor.close()
            self.plan, self._plan_mtime = load_plan(self.layout), self._mtime()
            self.monitor = Monitor(self.layout, self.plan)
        return self.monitor.refresh()

    def step(self) -> None:
        """One refresh: the snapshot and the tick every event stream sends."""
        snapshot = self._refresh()
        self.snapshot, self.payload = snapshot, json.dumps(feed.tick(snapshot), separators=(",", ":"))

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await asyncio.to_thread(self.step)
            except (SensorManagerError, OSError, ValueError):
                pass  # e.g. a plan being rewritten by `start`: the page keeps the last tick until a refresh succeeds
            else:
                async with self._changed:
                    self.version += 1
                    self._changed.notify_all()
            await asyncio.sleep(max(0.05, TICK_SECONDS - (time.monotonic() - started)))

    async def next(self, seen: int) -> int:
        async with self._changed:
            await self._changed.wait_for(lambda: self.version > seen)
            return self.version


def create_app(layout: ProjectLayout, token: str | None = None) -> Guard:
    ticker = Ticker(layout)

    @asynccontextmanager
    async def lifespan(_app):
        task = asyncio.create_task(ticker.run())
        try:
            yield
        finally:
            task.cancel()
            ticker.monitor.close()

    async def page(_request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def events(_request: Request) -> Response:
        shutdown = anyio.Event()  # set by sse-starlette when the server stops: end the stream cleanly

        async def stream():
            seen = 0  # the current tick goes out at once
            while not shutdown.is_set():
                fresh = None
                with anyio.move_on_after(0.25):  # no yield inside a cancel scope
                    fresh = await ticker.next(seen)
                if fresh is not None:
                    seen = fresh
                    yield {"event": "tick", "data": ticker.payload}
        return EventSourceResponse(stream(), ping=15, shutdown_event=shutdown, shutdown_grace_period=1.0)

    async def sensor_list(_request: Request) -> Response:
        return JSONResponse(feed.sensors(ticker.snapshot, ticker.plan))

    async def readings(request: Request) -> Response:
        sensor_id = request.path_params["sensor_id"]
        try:
            return JSONResponse(await asyncio.to_thread(feed.chart, layout, ticker.plan, sensor_id))
        except UsageError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        except SensorManagerError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)

    async def metrics(_request: Request) -> Response:
        body = await asyncio.to_thread(exposition, layout, ticker.snapshot, ticker.monitor.databases, ticker.anomalies)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    app = Starlette(routes=[
        Route("/", page),
        Route("/events", events),
        Route("/api/sensors", sensor_list),
        Route("/api/sensors/{sensor_id}/readings", readings),
        Route("/metrics", metrics),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ], lifespan=lifespan)
    return Guard(app, token)


class Guard:
    """ASGI middleware: the token when there is one; otherwise only requests addressed to loopback."""

    def __init__(self, app, token: str | None):
        self.app = app
        self.token = token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if self.token is None:
            host = headers.get("host", "").rsplit(":", 1)[0] if not headers.get("host", "").endswith("]") else headers["host"]
            if not is_loopback(host):
                return await PlainTextResponse("Forbidden: this dashboard answers only on loopback.\n", 403)(scope, receive, send)
            return await self.app(scope, receive, send)
        from_query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
        cookie = SimpleCookie(headers.get("cookie", "")).get(COOKIE)
        bearer = headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not any(hmac.compare_digest(given.encode(), self.token.encode()) for given in (from_query, cookie.value if cookie else "", bearer) if given):
            return await PlainTextResponse("Unauthorized: add ?token=<token> to the URL the dashboard printed.\n", 401,
                                           headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
        if not from_query:
            return await self.app(scope, receive, send)

        async def send_with_cookie(message):
            if message["type"] == "http.response.start":
                cookie_header = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict".encode()
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie_header)]}
            await send(message)
        return await self.app(scope, receive, send_with_cookie)


def serve(app, sock: socket.socket) -> None:
    """Serve until SIGINT or SIGTERM, then return (the command exits 0).

    uvicorn shuts down on either signal and then raises it again under the handlers it found; with
    Python's defaults that would be a KeyboardInterrupt or death by SIGTERM, so those are no-ops here.
    """
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
