"""CNT: how many alternatives and entries come back."""

import pytest
from cases import chat, completion

from logprobe.invariants import counts, shape


@pytest.mark.parametrize("k", [0, 1, 5])
def test_completions_alternative_count(k, api, model, judge, logprobs_limit):
    if k > logprobs_limit:
        pytest.skip(f"logprobs={k} is above the server's logprobs limit ({logprobs_limit})")
    exchange = api.completions(completion(model, logprobs=k, max_tokens=4))
    judge.response(exchange, shape.check_completions_shape, counts.check_completions_counts,
                   feature=f"logprobs={k}")


@pytest.mark.parametrize("k", [1, 5, 20])
def test_chat_alternative_count(k, api, model, judge, logprobs_limit):
    if k > logprobs_limit:
        pytest.skip(f"top_logprobs={k} is above the server's logprobs limit ({logprobs_limit})")
    exchange = api.chat(chat(model, logprobs=True, top_logprobs=k, max_tokens=4))
    judge.response(exchange, shape.check_chat_shape, counts.check_chat_counts,
                   feature=f"top_logprobs={k}")


def test_chat_logprobs_without_top_is_empty_list(chat_no_top, judge):
    judge.response(chat_no_top, counts.check_chat_counts, feature="logprobs")


@pytest.mark.parametrize("exchange", ["completion_top5", "chat_top5", "echo_top2"])
def test_entries_match_usage(exchange, request, judge):
    judge.response(request.getfixturevalue(exchange), counts.check_entries_match_usage,
                   feature="logprobs")
