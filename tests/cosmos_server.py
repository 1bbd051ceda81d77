"""A real Cosmos-protocol server on loopback for the tests: npm `@vercel/cosmosdb-server` (HTTPS, a
self-signed certificate), installed once into the project-local cache `.cache/cosmosdb-server/`.

`python tests/cosmos_server.py install` installs it (tests/run does, so CI does not pay it inside a test).
It keeps its data in memory: a fresh server is an empty account.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "@vercel/cosmosdb-server"
CACHE = Path(__file__).resolve().parent.parent / ".cache" / "cosmosdb-server"
ENTRY = CACHE / "node_modules" / "@vercel" / "cosmosdb-server" / "lib" / "cli.js"
# The emulator's well-known master key: valid base64, and public, so nothing secret lives in the tests.
EMULATOR_KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
_READY = re.compile(r"Ready to accept HTTPS? connections at [^:\s]+:(\d+)")


class Unavailable(RuntimeError):
    """Node or npm is missing, or the install failed: the caller skips (or fails under CI=true)."""


@dataclass
class CosmosServer:
    endpoint: str  # https://127.0.0.1:PORT/
    key: str
    process: subprocess.Popen

    @property
    def port(self) -> int:
        return int(self.endpoint.rstrip("/").rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def install(cache: Path = CACHE) -> Path:
    """Install the server into `cache` unless it is already there; return its entry script."""
    entry = cache / ENTRY.relative_to(CACHE)
    if entry.is_file():
        return entry
    npm = shutil.which("npm")
    if not shutil.which("node") or not npm:
        raise Unavailable("the Cosmos tests need Node.js and npm on PATH (for @vercel/cosmosdb-server)")
    cache.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(cache), PACKAGE],
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0 or not entry.is_file():
        raise Unavailable(f"npm install {PACKAGE} failed: {(result.stderr or result.stdout).strip()[-500:]}")
    return entry


def start(timeout: float = 30.0) -> CosmosServer:
    """Start a fresh server on 127.0.0.1 on a free port (the kernel picks it) and wait until it answers."""
    entry = install()
    node = shutil.which("node")
    if not node:
        raise Unavailable("the Cosmos tests need Node.js on PATH")
    process = subprocess.Popen([node, str(entry), "--host", "127.0.0.1", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()  # the server prints one line once it listens
    match = _READY.search(line)
    if not match:
        process.kill()
        process.wait()
        raise Unavailable(f"cosmosdb-server did not start: {line.strip() or 'no output'}")
    _drain_output(process)
    server = CosmosServer(endpoint=f"https://127.0.0.1:{match.group(1)}/", key=EMULATOR_KEY, process=process)
    _wait_answers(server, timeout)
    return server


def _drain_output(process: subprocess.Popen) -> None:
    """Read the server's output in the background so a chatty server never blocks on a full pipe."""

    def drain() -> None:
        assert process.stdout is not None
        for _ in process.stdout:
            pass

    threading.Thread(target=drain, daemon=True, name="cosmosdb-server-output").start()


def _wait_answers(server: CosmosServer, timeout: float) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # its self-signed certificate, on loopback only
    deadline = time.monotonic() + timeout
    while True:
        try:
            # Any HTTP answer (401 without a signature) means it serves requests.
            urllib.request.urlopen(server.endpoint, context=context, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError as error:
            if server.process.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise Unavailable(f"cosmosdb-server at {server.endpoint} does not answer: {error}") from error
            time.sleep(0.1)


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit("usage: python tests/cosmos_server.py install")
    try:
        print(install())
    except Unavailable as error:
        print(f"tests/cosmos_server.py: {error}", file=sys.stderr)
        sys.exit(0 if os.environ.get("CI") != "true" else 1)
