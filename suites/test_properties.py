"""Properties: hypothesis generates requests, the same invariants judge them.

Each example is a batch of requests sent together (so a property run costs
the server's time, not round trips), then judged one by one by a judge of its
own (the server may die between examples): the report keeps the last one
made, the failing example. A greedy echo is sent again alone (CONS-001) and
the choices of a sampled n > 1 request are scored again by echoes of their
tokens (CONS-003). Profiles: ``ci`` (the default here: derandomised,
few examples, the first failing example reported as found), ``dev`` and
``thorough`` (which shrink it); choose with ``--hypothesis-profile``. A
failing example's report carries a ``curl`` reproducer beside hypothesis's
own reproduce blob.

Derandomised examples follow the test functions' source, so which shapes a
profile draws changes with any edit. The request shapes known defects need
are therefore pinned (``strategies.pinned_shapes``) and sent on every run by
``test_pinned_request_shape``, judged by the same registered checks.
(``@example`` cannot pin them: these tests draw through ``st.data()``, as
their strategies need the served model and its limits, and hypothesis takes
no explicit examples for a data() argument.)
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logprobe.client import Exchange
from logprobe.forcing import judge_choices_forced
from logprobe.invariants import asked, consistency, errors, responses, text
from logprobe.invariants.core import CATALOGUE, bind, nothing_to_judge
from logprobe.invariants.readers import token_logprobs
from logprobe.judge import Judge
from logprobe.progress import Progress
from logprobe.strategies import (
    PINNED_SHAPE_NAMES,
    chat_requests,
    completion_requests,
    invalid_requests,
    pinned_shapes,
    responses_requests,
)
from logprobe.tokenizer import token_spellings

BATCH = 4
# Each example draws its requests before it makes its judge: a judge is refused once the
# server is down (liveness.ServerDown), and hypothesis, replaying the example that failed
# first, takes an example that stops before drawing what it drew the first time for
# inconsistent data generation (FlakyStrategyDefinition), which would hide the death.


@pytest.fixture(scope="session")
def vocab_size(independent_tokenizer: Any) -> int | None:
    return len(independent_tokenizer) if independent_tokenizer is not None else None


_PROGRESS: dict[str, Progress] = {}


def _example_done(request: pytest.FixtureRequest, judged: int) -> None:
    """One example judged: logged as the property test's progress (see logprobe.progress)."""
    name = request.node.name
    if name not in _PROGRESS:
        _PROGRESS[name] = Progress(f"{name}: examples", settings().max_examples)
    _PROGRESS[name].step(detail=f"({judged} requests judged)")


@pytest.fixture(scope="session")
def spellings(independent_tokenizer: Any) -> frozenset[str] | None:
    """Every vocabulary token's spellings (TXT-006), when the tokenizer is known."""
    return token_spellings(independent_tokenizer) if independent_tokenizer is not None else None


def _judge_valid(judge: Judge, exchange: Exchange, spellings: frozenset[str] | None) -> None:
    if judge.refused(exchange):
        return  # a clean 4xx to a legal request: the server's stated limit, recorded
    also = [bind(text.check_token_spelling, spellings)] \
        if spellings is not None and asked.logprobs(exchange.path, exchange.request_json) else []
    judge.applicable(exchange, *also, feature="the generated request")


def _judge_alone_again(judge: Judge, api: Any, exchange: Exchange) -> None:
    """A greedy echo that came back from a concurrent batch, sent again alone: the same
    prompt must score alike (CONS-001), whatever else was in flight."""
    request = exchange.request_json
    if not (exchange.status == 200 and request.get("echo") and request.get("temperature") == 0
            and request.get("logprobs") is not None and (request.get("n") or 1) == 1
            and not request.get("stream")):
        return
    first = token_logprobs(exchange.json)
    if first is None:
        return  # the checks above judged a response without logprobs
    alone = api.post(exchange.endpoint, request)
    again = token_logprobs(judge.ok(alone, feature="the same request again"))
    if again is not None:
        how = "sent alone after a concurrent batch"
        judge.measure_also(consistency.MEASURE, {"first": first, "again": again, "how": how})
        judge.check([exchange, alone], consistency.check_same_prompt, first, again, how)


@given(data=st.data())
def test_generated_completions(data, api, model, make_judge, vocab_size, logprobs_limit,
                               independent_tokenizer, spellings, request):
    strategy = completion_requests(model, max_logprobs=logprobs_limit, vocab_size=vocab_size)
    batch = data.draw(st.lists(strategy, min_size=BATCH, max_size=BATCH), label="requests")
    judge = make_judge()  # after drawing (see BATCH)
    for exchange in api.post_many([("/completions", r) for r in batch]):
        _judge_valid(judge, exchange, spellings)
        _judge_alone_again(judge, api, exchange)
        judge_choices_forced(judge, api, exchange, independent_tokenizer)
    _example_done(request, len(batch))


@given(data=st.data())
def test_generated_chat(data, api, model, make_judge, logprobs_limit, spellings, request):
    batch = data.draw(st.lists(chat_requests(model, max_top_logprobs=logprobs_limit),
                               min_size=BATCH, max_size=BATCH), label="requests")
    judge = make_judge()  # after drawing (see BATCH)
    for exchange in api.post_many([("/chat/completions", r) for r in batch]):
        _judge_valid(judge, exchange, spellings)
    _example_done(request, len(batch))


@given(data=st.data())
def test_generated_responses(data, api, model, make_judge, logprobs_limit, request):
    """Responses API requests, where the server serves the API (a 404, 405 or 501 to the
    first: nothing to judge)."""
    batch = data.draw(st.lists(responses_requests(model, max_top_logprobs=logprobs_limit),
                               min_size=BATCH, max_size=BATCH), label="requests")
    judge = make_judge()  # after drawing (see BATCH)
    for exchange in api.post_many([("/responses", r) for r in batch]):
        if exchange.status in (404, 405, 501):
            judge.record([exchange], [], nothing_to_judge(
                f"the server has no Responses API (HTTP {exchange.status})",
                responses.RESP_001))
            return
        _judge_valid(judge, exchange, None)
    _example_done(request, len(batch))


@given(data=st.data())
def test_generated_invalid_requests(data, api, model, make_judge, logprobs_limit, request):
    batch = data.draw(st.lists(invalid_requests(model, logprobs_limit), min_size=BATCH,
                               max_size=BATCH), label="requests")
    judge = make_judge()  # after drawing (see BATCH)
    exchanges = api.post_many([(path, body) for path, body, _ in batch])
    for exchange, (_, _, invariant) in zip(exchanges, batch, strict=True):
        judge.rejection(exchange, CATALOGUE[invariant])
    after = api.completions({"model": model, "prompt": "hi", "max_tokens": 1})
    judge.check(after, errors.check_still_serving, after.status)
    _example_done(request, len(batch) + 1)


@pytest.mark.parametrize("shape", PINNED_SHAPE_NAMES)
def test_pinned_request_shape(shape, api, model, judge, logprobs_limit, independent_tokenizer,
                              spellings):
    path, body, invalid = pinned_shapes(model, logprobs_limit)[shape]
    exchange = api.post(path, body)
    if path == "/responses" and exchange.status in (404, 405, 501):
        judge.record([exchange], [], nothing_to_judge(
            f"the server has no Responses API (HTTP {exchange.status})", responses.RESP_001))
    elif invalid is not None:
        judge.rejection(exchange, CATALOGUE[invalid])
    else:
        _judge_valid(judge, exchange, spellings)
        _judge_alone_again(judge, api, exchange)
        judge_choices_forced(judge, api, exchange, independent_tokenizer)
