"""SMP: temperature 0, repetition and n > 1."""

import pytest
from cases import SEED, completion

from logprobe.invariants import sampling, values


@pytest.mark.parametrize("exchange", ["completion_top5", "chat_top5"])
def test_greedy_is_argmax(exchange, request, judge):
    judge.response(request.getfixturevalue(exchange), sampling.check_greedy_argmax,
                   feature="logprobs")


def test_identical_requests_repeat(api, model, judge, tolerance):
    """Sent together, as lm-eval sends its requests: batching is allowed to move values by
    eps (SMP-002), never to change a token."""
    exchanges = api.post_many([("/completions", completion(model, logprobs=2, seed=SEED))] * 5)
    # Each answer is judged as an answer first: logprobs asked for and none came back is not
    # a repeatable answer (it was IGNORED), whatever the five have in common.
    bodies = [judge.applicable(e, feature="logprobs") for e in exchanges]
    judge.check(exchanges, sampling.check_repeatable, bodies, tolerance)


def test_logprob_mode(api, model, judge):
    low, high = api.post_many([
        ("/completions", completion(model, logprobs=5, max_tokens=1, temperature=t, seed=SEED))
        for t in (0.3, 1.7)])
    judge.check([low, high], sampling.describe_logprob_mode, judge.ok(low), judge.ok(high))


def test_n_choices_have_their_own_logprobs(api, model, judge):
    exchange = api.completions(completion(model, logprobs=2, max_tokens=6, n=3, temperature=1.0,
                                          seed=SEED))
    judge.response(exchange, sampling.check_choices_own_logprobs, values.check_alternatives,
                   values.check_logprob_values, feature="n=3 with logprobs")


def test_n_choices_at_temperature_zero(api, model, judge):
    """The reference serves n > 1 at temperature 0 (n identical greedy choices); a server may
    refuse it cleanly (vLLM does: its expectation file knows), never with a 5xx."""
    exchange = api.completions(completion(model, logprobs=2, max_tokens=4, n=2, seed=SEED))
    judge.response(exchange, sampling.check_choices_own_logprobs, sampling.check_greedy_argmax,
                   feature="n=2 at temperature 0")
