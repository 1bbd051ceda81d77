"""A loopback fault proxy in front of the Cosmos test server: the faults the server cannot make.

Plain HTTP towards the client (endpoint `http://127.0.0.1:PORT/`), HTTPS to the server. At the configured
rates it answers 429 with `x-ms-retry-after-ms`, answers 503, or drops the connection without an answer;
`down = True` drops every request (a stopped backend whose data survives). The account document's
locations are rewritten to the proxy, so the SDK's endpoint discovery keeps talking through it.
"""
from __future__ import annotations

import asyncio
import json
import random
import threading
from dataclasses import dataclass, field

from aiohttp import ClientSession, TCPConnector, web

INJECTED = {"503": "ServiceUnavailable", "401": "Unauthorized", "413": "RequestEntityTooLarge", "400": "BadRequest"}
HOP_HEADERS = {"content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding", "host"}


@dataclass
class Faults:
    throttle: float = 0.0  # share of requests answered 429
    unavailable: float = 0.0  # share answered 503
    drop: float = 0.0  # share whose connection is closed without an answer
    retry_after_ms: int = 20
    down: bool = False
    answer_all: int | None = None  # every request gets this status (401: a refused key)
    refuse_ids: dict[str, int] = field(default_factory=dict)  # a document id -> the status its create gets (413, 400)
    only_writes: bool = True  # inject only into document writes (POST …/docs), as throttling hits them
    counts: dict[str, int] = field(default_factory=lambda: {"429": 0, "503": 0, "drop": 0, "passed": 0})


class FaultProxy:
    def __init__(self, upstream: str, seed: int = 7):
        self.upstream = upstream.rstrip("/")
        self.faults = Faults()
        self._random = random.Random(seed)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="cosmos-fault-proxy", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self._session = ClientSession(connector=TCPConnector(ssl=False, limit=64), auto_decompress=False)
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def _fault(self, request: web.Request, body: bytes) -> str | None:
        faults = self.faults
        if faults.down:
            return "drop"
        if faults.answer_all:
            return str(faults.answer_all)
        create = (request.method == "POST" and request.path.rstrip("/").endswith("/docs")
                  and "x-ms-documentdb-isquery" not in request.headers)
        if create and faults.refuse_ids:
            status = faults.refuse_ids.get(json.loads(body).get("id"))
            if status:
                return str(status)
        if faults.only_writes and not create:
            return None
        roll = self._random.random()
        for kind, rate in (("429", faults.throttle), ("503", faults.unavailable), ("drop", faults.drop)):
            if roll < rate:
                return kind
            roll -= rate
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        fault = self._fault(request, body)
        if fault:
            self.faults.counts[fault] = self.faults.counts.get(fault, 0) + 1
        if fault == "drop":
            assert request.transport is not None
            request.transport.abort()
            raise web.HTTPServiceUnavailable()  # never sent: the connection is gone
        if fault == "429":
            return web.json_response({"code": "TooManyRequests", "message": "Request rate is large (injected)"},
                                     status=429, headers={"x-ms-retry-after-ms": str(self.faults.retry_after_ms),
                                                          "x-ms-request-charge": "0", "x-ms-substatus": "3200"})
        if fault:
            return web.json_response({"code": INJECTED.get(fault, "Injected"), "message": f"injected {fault}"},
                                     status=int(fault))
        self.faults.counts["passed"] += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with self._session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                         data=body) as upstream:
            payload = await upstream.read()
            if request.method == "GET" and request.path == "/" and upstream.status == 200:
                payload = self._relocated(payload)
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS}
            return web.Response(status=upstream.status, body=payload, headers=out)

    def _relocated(self, payload: bytes) -> bytes:
        account = json.loads(payload)
        for key in ("writableLocations", "readableLocations"):
            for location in account.get(key, []):
                location["databaseAccountEndpoint"] = self.endpoint
        return json.dumps(account).encode()

    def close(self) -> None:
        async def stop() -> None:
            await self._runner.cleanup()
            await self._session.close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
