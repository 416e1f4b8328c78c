"""ERR: invalid parameters get a clean 4xx and the server survives them."""

import pytest
from cases import chat, completion

from logprobe.invariants import errors


def _rejected_then_serving(api, model, judge, exchange, inv):
    judge.rejection(exchange, inv)
    after = api.completions(completion(model, max_tokens=1))
    judge.check(after, errors.check_still_serving, after.status)


@pytest.mark.parametrize("value", [21, -1, 1.5, "5"], ids=["21", "-1", "1.5", "str5"])
def test_chat_top_logprobs_out_of_range(value, api, model, judge):
    exchange = api.chat(chat(model, logprobs=True, top_logprobs=value, max_tokens=2))
    _rejected_then_serving(api, model, judge, exchange, errors.ERR_001)


def test_top_logprobs_without_logprobs(api, model, judge):
    exchange = api.chat(chat(model, top_logprobs=3, max_tokens=2))
    _rejected_then_serving(api, model, judge, exchange, errors.ERR_002)


@pytest.mark.parametrize("offset", [None, 1], ids=["negative", "above-limit"])
def test_completions_logprobs_out_of_range(offset, api, model, judge, logprobs_limit):
    value = -1 if offset is None else logprobs_limit + offset
    exchange = api.completions(completion(model, logprobs=value, max_tokens=2))
    _rejected_then_serving(api, model, judge, exchange, errors.ERR_003)


def test_completions_logprobs_at_limit_accepted(api, model, judge, logprobs_limit):
    exchange = api.completions(completion(model, logprobs=logprobs_limit, max_tokens=2))
    judge.ok(exchange, feature=f"logprobs={logprobs_limit} (--logprobs-limit)")
