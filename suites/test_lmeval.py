"""LMEVAL: lm-eval's exact loglikelihood request, judged the way lm-eval reads it.

Teacher forcing: a request that *generates* from the context scores each new
token with the right preceding tokens by construction. The echo request that
lm-eval sends for context + the same tokens must give the same numbers at the
same positions; a server that shifts prompt logprobs by one position (seen in
llama-cpp-python) gives the score of a different token there.
"""

from __future__ import annotations

from typing import Any

import pytest
from cases import LMEVAL_BATCH, LMEVAL_CONTEXTS, SEED, completion, first_logprobs

from logprobe.invariants import echo, lmeval, numerics, shape
from logprobe.invariants.core import bind
from logprobe.invariants.readers import usage

CONTINUATION_TOKENS = 3


def test_lmeval_request_text_prompt(api, model, judge):
    exchange = api.completions(lmeval.lmeval_request(model, "The capital of France is Paris"))
    body = judge.ok(exchange, feature="echo with logprobs")
    prompt_tokens = usage(body, "prompt_tokens")
    judge.response(exchange, shape.check_completions_shape,
                   bind(lmeval.check_lmeval_response, [prompt_tokens] if prompt_tokens else None))


def test_lmeval_request_token_ids(api, model, prompt_tokenizer, judge):
    ids = prompt_tokenizer.encode("The capital of France is Paris", add_special_tokens=False)
    exchange = api.completions(lmeval.lmeval_request(model, ids))
    judge.response(exchange, shape.check_completions_shape,
                   bind(lmeval.check_lmeval_response, [len(ids)]), feature="echo with logprobs")


def test_lmeval_request_batch_text(api, model, judge, optional_tokenizer):
    exchange = api.completions(lmeval.lmeval_request(model, LMEVAL_BATCH))
    lengths = [len(optional_tokenizer.encode(p, add_special_tokens=False)) for p in LMEVAL_BATCH] \
        if optional_tokenizer else None
    judge.response(exchange, shape.check_completions_shape, bind(lmeval.check_lmeval_response, lengths),
                   bind(echo.check_echo, lengths), feature="a list of prompts with echo")


def test_lmeval_request_batch_token_ids(api, model, prompt_tokenizer, judge):
    batch = [prompt_tokenizer.encode(p, add_special_tokens=False) for p in LMEVAL_BATCH]
    exchange = api.completions(lmeval.lmeval_request(model, batch))
    judge.response(exchange, shape.check_completions_shape,
                   bind(lmeval.check_lmeval_response, [len(ids) for ids in batch]),
                   feature="a list of token-id prompts with echo")


class Context:
    """A context as lm-eval would send it: token ids when a tokenizer is known, else text."""

    def __init__(self, text: str, tokenizer: Any):
        self.text = text
        self.tokenizer = tokenizer
        self.ids = tokenizer.encode(text, add_special_tokens=False) if tokenizer else None

    def prompt(self, continuation: list[str]) -> Any:
        if self.ids is None:
            return self.text + "".join(continuation)
        return self.ids + self.continuation_ids(continuation)

    def continuation_ids(self, continuation: list[str]) -> list[int]:
        """Token ids of ``continuation`` (token strings); skip if they do not round-trip."""
        ids = self.tokenizer.encode("".join(continuation), add_special_tokens=False)
        if [self.tokenizer.decode([i]) for i in ids] != continuation:
            pytest.skip(f"the continuation {continuation!r} does not retokenize into the same "
                        "tokens with this tokenizer")
        return ids


def _generate(sender, model, judge, context: Context, prefix: list[str], n: int):
    """Greedy generation from context + prefix: tokens and their teacher-forced logprobs.

    From the context alone both tests ask the same question (the greedy one reads all
    positions, the non-greedy one the first): ``shared_api`` sends it once per run."""
    exchange = sender.completions(completion(model, context.prompt(prefix), max_tokens=n,
                                          logprobs=5, seed=SEED))
    body = judge.response(exchange, shape.check_completions_shape, feature="logprobs")
    logprobs = first_logprobs(body)
    return exchange, logprobs


def _ctxlen(context: Context, generation_body: Any) -> int:
    if context.ids is not None:
        return len(context.ids)
    prompt_tokens = usage(generation_body, "prompt_tokens")
    if not prompt_tokens:
        pytest.skip("without a tokenizer, the context length comes from usage.prompt_tokens, "
                    "which this server does not send")
    return prompt_tokens


def _judge_echo(api, model, judge, context, continuation, teacher, greedy, ctxlen, sources,
                tolerance):
    exchange = api.completions(lmeval.lmeval_request(model, context.prompt(continuation), SEED))
    body = judge.ok(exchange, feature="echo with logprobs")
    if context.ids is None:
        echoed = (first_logprobs(body) or {}).get("tokens", [])[ctxlen:ctxlen + len(continuation)]
        if echoed != continuation and "".join(echoed) == "".join(continuation):
            pytest.skip("the text prompt retokenized differently at the context boundary; "
                        "pass --tokenizer to send token ids as lm-eval does")
    entries = (first_logprobs(body) or {}).get("token_logprobs") or []
    judge.measure(numerics.MEASURE, {
        "teacher": list(teacher), "echo": entries[ctxlen:ctxlen + len(continuation)]})
    judge.record([exchange, *sources], lmeval.check_continuation.invariants,
                 lmeval.check_continuation(body, ctxlen, teacher, greedy, continuation, tolerance)
                 + shape.check_completions_shape(exchange.request_json, body))


@pytest.fixture(params=["text", "token-ids"])
def prompt_form(request: pytest.FixtureRequest) -> Any:
    """lm-eval sends text prompts (tokenizer_backend=None) or token ids (a tokenizer known):
    the tokenizer to build id prompts with, or None for text."""
    if request.param == "text":
        return None
    return request.getfixturevalue("prompt_tokenizer")


@pytest.mark.parametrize("text", LMEVAL_CONTEXTS)
def test_echo_matches_teacher_forcing_greedy(text, api, shared_api, model, judge, prompt_form,
                                             tolerance):
    context = Context(text, prompt_form)
    generation, logprobs = _generate(shared_api, model, judge, context, [], CONTINUATION_TOKENS)
    continuation = logprobs["tokens"]
    if context.ids is not None:
        context.continuation_ids(continuation)
    ctxlen = _ctxlen(context, generation.json)
    _judge_echo(api, model, judge, context, continuation, logprobs["token_logprobs"], True,
                ctxlen, [generation], tolerance)


@pytest.mark.parametrize("text", LMEVAL_CONTEXTS)
def test_echo_matches_teacher_forcing_non_greedy(text, api, shared_api, model, judge,
                                                 prompt_form, tolerance):
    """A continuation whose first token is the runner-up: lm-eval must call it not greedy."""
    context = Context(text, prompt_form)
    first, logprobs = _generate(shared_api, model, judge, context, [], CONTINUATION_TOKENS)
    greedy_token = logprobs["tokens"][0]
    ranked = sorted(logprobs["top_logprobs"][0].items(), key=lambda kv: -kv[1])
    runner_up = next(((t, v) for t, v in ranked if t != greedy_token and t.strip()), None)
    if runner_up is None:
        pytest.skip("no runner-up alternative to build a non-greedy continuation from")
    token, value = runner_up
    if context.ids is not None:
        context.continuation_ids([token])
    rest, rest_logprobs = _generate(api, model, judge, context, [token], CONTINUATION_TOKENS - 1)
    continuation = [token, *rest_logprobs["tokens"]]
    if context.ids is not None:
        context.continuation_ids(continuation)
    teacher = [value, *rest_logprobs["token_logprobs"]]
    ctxlen = _ctxlen(context, first.json)
    _judge_echo(api, model, judge, context, continuation, teacher, False, ctxlen, [first, rest],
                tolerance)
