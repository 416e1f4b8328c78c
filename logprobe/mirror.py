"""``--reference-endpoint``: every greedy request the suite sends, sent to a second server too.

``MirroredClient`` is the client to the server under test; each greedy request it sends
(temperature 0, not a stream) also goes to the reference endpoint with the same body (the
model renamed to the reference's), and the reference's answer travels with the exchange
(``Exchange.mirrored``). The judge then compares the two answers without sending anything
(``logprobe.invariants.differential``). A request sent twice is sent to the reference once.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from logprobe.client import Exchange, RecordingClient


def greedy(exchange: Exchange) -> bool:
    """What two servers must answer alike: a greedy, non-streamed completions request."""
    request = exchange.request_json
    return (exchange.method == "POST" and isinstance(request, dict) and not request.get("stream")
            and exchange.path.rstrip("/").endswith("completions")
            and request.get("temperature") == 0)


class Mirror:
    """The reference endpoint's answer to an exchange's request, asked once per request."""

    def __init__(self, client: RecordingClient, model: str, model_under_test: str):
        self.client, self.model, self.model_under_test = client, model, model_under_test
        self._answers: dict[str, Exchange] = {}
        self._lock = threading.Lock()

    def answer(self, exchange: Exchange) -> Exchange | None:
        """The reference's answer to a greedy exchange's request; None for any other."""
        if not greedy(exchange):
            return None
        request = dict(exchange.request_json)
        if request.get("model") == self.model_under_test:
            request["model"] = self.model
        key = exchange.path + json.dumps(request, sort_keys=True, default=str)
        with self._lock:
            known = self._answers.get(key)
        if known is not None:
            return known
        answer = self.client.post(exchange.endpoint, request)  # below the reference's base URL
        with self._lock:
            return self._answers.setdefault(key, answer)

    def close(self) -> None:
        self.client.close()


class MirroredClient(RecordingClient):
    """A ``RecordingClient`` to the server under test whose greedy exchanges carry the
    reference's answer too (``post_many``, ``completions`` and ``chat`` all send by
    ``post``)."""

    def __init__(self, base_url: str, mirror: Mirror, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self.mirror = mirror

    def post(self, path: str, payload: Any) -> Exchange:
        exchange = super().post(path, payload)
        exchange.mirrored = self.mirror.answer(exchange)
        return exchange

    def close(self) -> None:
        super().close()
        self.mirror.close()
