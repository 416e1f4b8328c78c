"""Exchanges several tests judge, sent once per run: across pytest-xdist workers too.

A session fixture shares an exchange within one process, but each xdist worker is a
process of its own and sent it again (with four workers, six of the suite's 160
requests). Here the first process to ask sends the request and leaves the exchange in
the run's share directory; the others wait on the same lock and read it back. Within a
process the same payload is answered from memory, so two tests asking the same question
(not only two uses of one fixture) make one request.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from logprobe.client import Exchange, RecordingClient

try:
    import fcntl
except ImportError:  # Windows (a client of a remote server): each worker sends its own
    fcntl = None  # type: ignore[assignment]


class SharedExchanges:
    """``completions``/``chat`` like the client's, answered once per run and payload."""

    def __init__(self, client: RecordingClient, directory: Path | None):
        self.client = client
        self.directory = directory if fcntl is not None else None
        self._seen: dict[str, Exchange] = {}
        self._lock = threading.Lock()

    def completions(self, payload: dict[str, Any]) -> Exchange:
        return self.post("/completions", payload)

    def chat(self, payload: dict[str, Any]) -> Exchange:
        return self.post("/chat/completions", payload)

    def post(self, path: str, payload: dict[str, Any]) -> Exchange:
        key = hashlib.sha256(json.dumps([path, payload], sort_keys=True).encode()).hexdigest()[:32]
        with self._lock:
            if key not in self._seen:
                self._seen[key] = self._fetch(key, path, payload)
            return self._seen[key]

    def _fetch(self, key: str, path: str, payload: dict[str, Any]) -> Exchange:
        if self.directory is None:
            return self.client.post(path, payload)
        stored = self.directory / f"{key}.json"
        with open(self.directory / f"{key}.lock", "w") as lock:
            # Held while the request is in flight; the OS releases it if this process dies.
            fcntl.flock(lock, fcntl.LOCK_EX)
            if stored.exists():
                return Exchange.from_wire(json.loads(stored.read_text()))
            exchange = self.client.post(path, payload)
            partial = stored.with_suffix(".partial")
            partial.write_text(json.dumps(exchange.to_wire()))
            partial.replace(stored)
            return exchange
