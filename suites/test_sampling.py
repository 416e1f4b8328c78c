"""SMP: temperature 0, repetition and n > 1."""

import pytest
from cases import SEED, completion, first_logprobs

from logprobe.forcing import echo_scoring
from logprobe.invariants import sampling, values
from logprobe.invariants.core import nothing_to_judge


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


def test_a_token_forced_by_logit_bias_keeps_its_unbiased_logprob(api, model, judge, tolerance,
                                                                  optional_tokenizer):
    """lm-eval's logit_bias scoring (PR #4012) forces each continuation token with the
    largest bias and reads its logprob: the value must be the token's before the bias (its
    echo-scored one), a MUST where the server's logprobs are raw (the two temperatures
    sent here tell), an INFO finding where they are processed."""
    if optional_tokenizer is None:
        judge.record([], [], nothing_to_judge(
            "logit_bias takes token ids: needs the served model's tokenizer (--tokenizer)",
            sampling.SMP_005, sampling.SMP_006))
        return
    ids = optional_tokenizer.encode("The capital of France is", add_special_tokens=False)
    target = optional_tokenizer.encode(" the", add_special_tokens=False)
    if len(target) != 1:
        judge.record([], [], nothing_to_judge("' the' is not one token of this tokenizer",
                                              sampling.SMP_005, sampling.SMP_006))
        return
    forced, scored, low, high = api.post_many([
        ("/completions", completion(model, ids, max_tokens=1, logprobs=1,
                                    logit_bias={str(target[0]): sampling.FORCING_BIAS})),
        ("/completions", echo_scoring(model, ids + target)),
        *[("/completions", completion(model, ids, logprobs=5, max_tokens=1, temperature=t,
                                      seed=SEED)) for t in (0.3, 1.7)]])
    generated = first_logprobs(judge.applicable(forced, feature="logit_bias"))
    echoed = first_logprobs(judge.applicable(scored, feature="echo"))
    raw = sampling.logprob_mode_raw(judge.ok(low), judge.ok(high))
    judge.check([forced, scored], sampling.check_forced_token,
                optional_tokenizer.decode(target), generated["tokens"][0],
                generated["token_logprobs"][0], echoed["token_logprobs"][len(ids)], raw,
                tolerance)
