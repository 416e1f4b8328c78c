"""A replay of recorded answers (``logprobe.replay``), served from a thread of the test's
own process: what the in-process tier runs the suite against. It answers exactly what a
real server answered (tests/recordings/suite/), and counts any request it was never asked
before, so that a test can tell a verdict made on real answers from one made on 404s."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpcore  # noqa: F401  (see below)
import httpx
from aiohttp import web

from logprobe.replay import replay_app

# httpx imports httpcore on its first request and maps httpcore's errors to its own by
# the classes it saw then. pytester restores sys.modules after each test: had httpcore
# been first imported inside one, the next test's import would make new classes that
# httpx no longer maps, and a refused connection would escape as httpcore.ConnectError.
# Imported here, before any pytester snapshot, httpcore is the same module throughout.

SUITE_RECORDINGS = Path(__file__).resolve().parent / "recordings" / "suite"


@dataclass
class Replay:
    root: str  # the server's root URL, no /v1
    verdicts: dict[str, str]  # each test's verdict in the live run that was recorded
    selection: list[str]

    @property
    def base_url(self) -> str:
        return self.root + "/v1"

    def stats(self) -> dict[str, Any]:
        return httpx.get(self.root + "/_replay/stats", timeout=5).json()


@contextmanager
def replaying(name: str) -> Iterator[Replay]:
    """Serve ``tests/recordings/suite/NAME.answers.json`` on a free port until the block ends."""
    recorded = json.loads((SUITE_RECORDINGS / f"{name}.verdicts.json").read_text())
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(replay_app(SUITE_RECORDINGS / f"{name}.answers.json"))
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield Replay(f"http://127.0.0.1:{port}", recorded["verdicts"], recorded["selection"])
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
