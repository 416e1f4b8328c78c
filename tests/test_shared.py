"""An exchange crossing processes (logprobe.shared) keeps everything the checks read.

Pure: built from a recorded vLLM response. That shared exchanges are sent once per run
against a real server is shown in test_reports (two xdist workers, the same requests as
one process).
"""

from __future__ import annotations

import json

from recorded import VLLM, exchange

from logprobe.client import Exchange


def _crossed(original: Exchange) -> Exchange:
    return Exchange.from_wire(json.loads(json.dumps(original.to_wire())))


def test_a_recorded_exchange_crosses_unchanged():
    request, status, response = exchange(VLLM, "completions_logprobs5")
    original = Exchange("POST", "http://127.0.0.1:8000/v1/completions", request, status=status,
                        response_headers={"content-type": "application/json"},
                        body=json.dumps(response).encode(), elapsed=0.25, started_at=12.5,
                        retries=["HTTP 503"])
    crossed = _crossed(original)
    assert crossed.json == original.json == response
    assert (crossed.request_json, crossed.status, crossed.response_headers, crossed.retries,
            crossed.elapsed, crossed.started_at, crossed.path) == \
        (request, status, original.response_headers, ["HTTP 503"], 0.25, 12.5, "/v1/completions")
    assert crossed.curl() == original.curl()


def test_bytes_json_cannot_hold_cross_as_they_came():
    """A hostile body (not UTF-8, a NaN literal, cut short) reaches the checks byte for byte."""
    body = b'{"choices": [{"logprobs": NaN, "text": "\xff\xfe"}'
    original = Exchange("POST", "http://h/v1/completions", {"prompt": "x"}, status=200,
                        body=body, truncated=True, transport_error="ReadTimeout: slow")
    crossed = _crossed(original)
    assert crossed.body == body
    assert crossed.truncated and crossed.transport_error == "ReadTimeout: slow"
    assert crossed.parse_error == original.parse_error is not None
