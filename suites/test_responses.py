"""RESP: logprobs from the Responses API, where a server serves it.

A server without ``/v1/responses`` (a 404, 405 or 501) or that refuses its logprobs with
a clean 4xx has nothing to judge here (N/A), never a failure: the surface is optional."""

from __future__ import annotations

from typing import Any

from cases import responses_request

from logprobe.client import Exchange
from logprobe.invariants import responses
from logprobe.invariants.core import Verdict, Violation, nothing_to_judge
from logprobe.judge import Judge, classify

NOT_SERVED = (404, 405, 501)


def _not_served(judge: Judge, exchange: Exchange) -> bool:
    """A server without the Responses API (a 404, 405 or 501): nothing to judge."""
    if exchange.status not in NOT_SERVED:
        return False
    judge.record([exchange], [], nothing_to_judge(
        f"the server has no Responses API (HTTP {exchange.status})", responses.RESP_001,
        responses.RESP_003, responses.RESP_004))
    return True


def _served(judge: Judge, api: Any, exchange: Exchange) -> Any:
    """The body, judged by every check that applies; None (N/A) where the server has no
    Responses API. A server that serves it and refuses OpenAI's way of asking for logprobs
    (top_logprobs with the include entry) is UNSUPPORTED; what it answers in its own
    dialect (``logprobs: true`` added, as llama.cpp's server asks) is reported beside."""
    if _not_served(judge, exchange):
        return None
    if classify(exchange)[0] is Verdict.UNSUPPORTED and "logprobs" in exchange.text:
        dialect = api.post("/responses", {**exchange.request_json, "logprobs": True})
        body = dialect.json if dialect.status == 200 else None
        got = [len(p.get("logprobs") or []) for _, p in responses.text_parts(body)]
        judge.record([dialect], [responses.RESP_005], [Violation(
            responses.RESP_005, "OpenAI's request refused; with logprobs: true added it "
            f"answered HTTP {dialect.status}, logprobs entries per part {got}",
            actual=dialect.curl())])
    return judge.applicable(exchange, feature="the Responses API's logprobs")


def test_responses_logprobs_shape_counts_and_spelling(api, model, judge):
    for exchange in api.post_many([("/responses", responses_request(model, k)) for k in (0, 2, 5)]):
        if _served(judge, api, exchange) is None:
            return


def test_responses_top_logprobs_without_include_is_reported(api, model, judge):
    """OpenAI sends logprobs only with the include entry; a server answering top_logprobs
    without it, refused or answered, is reported (RESP-005), never failed."""
    exchange = api.post("/responses", responses_request(model, 2, include=False))
    if _not_served(judge, exchange):
        return
    if judge.refused(exchange):  # an ERR-007 finding with its words
        judge.record([exchange], [responses.RESP_005], [Violation(
            responses.RESP_005, "top_logprobs without the include entry refused with a "
            f"clean 4xx: {exchange.summary(200)}")])
        return
    judge.applicable(exchange, feature="the Responses API")


def test_responses_stream_carries_the_same_logprobs(api, model, judge, tolerance):
    plain, streamed = api.post_many([("/responses", responses_request(model, 2)),
                                     ("/responses", responses_request(model, 2, stream=True))])
    body = _served(judge, api, plain)
    if body is None:
        return
    events = judge.ok(streamed, feature="a Responses stream")
    judge.check([plain, streamed], responses.check_stream_matches, body, events, tolerance)
