"""VAL: finite, non-positive logprobs consistent with their alternatives."""

import pytest

from logprobe.invariants import values

EXCHANGES = ["completion_top5", "chat_top5", "echo_top2"]


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_logprob_values(exchange, request, judge):
    judge.response(request.getfixturevalue(exchange), values.check_logprob_values,
                   feature="logprobs")


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_alternatives_consistent(exchange, request, judge):
    judge.response(request.getfixturevalue(exchange), values.check_alternatives,
                   feature="logprobs")


def test_chat_alternatives_unique(chat_top5, judge):
    judge.response(chat_top5, values.check_unique_alternatives, feature="logprobs")
