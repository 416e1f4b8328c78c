"""``--reference-endpoint``: each judged exchange, sent to a second server as well.

The judge hands every exchange it judges here once; a greedy one (temperature 0, not a
stream) is sent to the reference endpoint with the same body (the
model renamed to the reference's) and the two answers are compared value by value
(logprobe.invariants.differential). A request several tests judge is sent once.
"""

from __future__ import annotations

import json
import math
import threading
from typing import Any

from logprobe.client import Exchange, RecordingClient
from logprobe.invariants.core import Violation
from logprobe.invariants.differential import (
    KEPT_DELTAS,
    SAME,
    check_same_answer,
    compare,
    field_deltas,
)


def greedy(exchange: Exchange) -> bool:
    """What two servers must answer alike: a greedy, non-streamed completions request."""
    request = exchange.request_json
    return (exchange.method == "POST" and isinstance(request, dict) and not request.get("stream")
            and exchange.path.rstrip("/").endswith("completions")
            and request.get("temperature") == 0)


class Mirror:
    def __init__(self, client: RecordingClient, model: str, model_under_test: str,
                 tolerance: float = SAME):
        self.client, self.model, self.model_under_test = client, model, model_under_test
        self.tolerance = tolerance
        self._answers: dict[str, Exchange] = {}
        self._lock = threading.Lock()

    def compare(self, exchange: Exchange) -> tuple[list[Violation], dict[str, dict[str, Any]]]:
        """DIFF-001 violations for this exchange, and per field what was compared."""
        if not greedy(exchange):
            return [], {}
        request = dict(exchange.request_json)
        if request.get("model") == self.model_under_test:
            request["model"] = self.model
        key = exchange.path + json.dumps(request, sort_keys=True, default=str)
        with self._lock:
            reference = self._answers.get(key)
        if reference is None:  # the same endpoint below the reference's base URL
            reference = self.client.post(exchange.endpoint, request)
            with self._lock:
                self._answers[key] = reference
        leaves = compare(exchange.json, reference.json)  # one walk for the check and the summary
        found = check_same_answer(exchange.status, exchange.json, reference.status,
                                  reference.json, (exchange.curl(), reference.curl()),
                                  self.tolerance, leaves)
        if exchange.status != reference.status:
            return found, {"status": {"n": 1, "differ": 1, "deltas": []}}
        return found, {field: self._kept(deltas)
                       for field, deltas in field_deltas(leaves).items()}

    def _kept(self, deltas: list[float]) -> dict[str, Any]:
        """n, how many differ, and the largest finite nonzero differences (plain JSON)."""
        finite = sorted((d for d in deltas if math.isfinite(d) and d > 0), reverse=True)
        return {"n": len(deltas), "differ": sum(1 for d in deltas if d > self.tolerance),
                "deltas": [round(d, 9) for d in finite[:KEPT_DELTAS]]}
