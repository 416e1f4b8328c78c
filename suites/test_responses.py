"""RESP: logprobs from the Responses API, where a server serves it.

A server without ``/v1/responses`` (a 404, 405 or 501) or that refuses its logprobs with
a clean 4xx has nothing to judge here (N/A), never a failure: the surface is optional."""

from __future__ import annotations

from typing import Any

from logprobe.client import Exchange
from logprobe.invariants import responses
from logprobe.invariants.core import nothing_to_judge
from logprobe.judge import Judge

NOT_SERVED = (404, 405, 501)


def request(model: str, k: int | None = 2, include: bool = True, **more: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "input": "Write one sentence about the sea.",
                            "max_output_tokens": 12, "temperature": 0, **more}
    if k is not None:
        body["top_logprobs"] = k
    if include:
        body["include"] = [responses.INCLUDE]
    return body


def _served(judge: Judge, exchange: Exchange) -> Any:
    """The body, judged by every check that applies; None (N/A) where the server has no
    Responses API or refuses the request cleanly."""
    unjudged = (responses.RESP_001, responses.RESP_003, responses.RESP_004)
    if exchange.status in NOT_SERVED:
        judge.record([exchange], [], nothing_to_judge(
            f"the server has no Responses API (HTTP {exchange.status})", *unjudged))
        return None
    if judge.refused(exchange):
        judge.record([exchange], [], nothing_to_judge(
            "the server refused the Responses request with a clean 4xx", *unjudged))
        return None
    return judge.applicable(exchange, feature="the Responses API")


def test_responses_logprobs_shape_counts_and_spelling(api, model, judge):
    for exchange in api.post_many([("/responses", request(model, k)) for k in (0, 2, 5)]):
        if _served(judge, exchange) is None:
            return


def test_responses_top_logprobs_without_include_is_reported(api, model, judge):
    """OpenAI sends logprobs only with the include entry; a server answering top_logprobs
    without it, either way, is reported (RESP-005), never failed."""
    _served(judge, api.post("/responses", request(model, 2, include=False)))


def test_responses_stream_carries_the_same_logprobs(api, model, judge, tolerance):
    plain, streamed = api.post_many([("/responses", request(model, 2)),
                                     ("/responses", request(model, 2, stream=True))])
    body = _served(judge, plain)
    if body is None:
        return
    if streamed.status in NOT_SERVED or judge.refused(streamed):
        judge.record([streamed], [], nothing_to_judge("the server refused the stream",
                                                      responses.RESP_006))
        return
    events = judge.ok(streamed, feature="a Responses stream")
    judge.check([plain, streamed], responses.check_stream_matches, body, events, tolerance)
