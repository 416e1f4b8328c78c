"""PROMPT: vLLM's prompt_logprobs extension, where a server offers it.

A server without it refuses the field with a clean 4xx or ignores it: the tests then have
nothing to judge (N/A, with a PROMPT-004 finding naming which), never a failure."""

from __future__ import annotations

from typing import Any

from cases import completion, first_logprobs

from logprobe.client import Exchange
from logprobe.forcing import echo_scoring
from logprobe.invariants import consistency, prompt
from logprobe.invariants.core import nothing_to_judge
from logprobe.judge import Judge

# Long enough (over 24 tokens) for PROMPT-002's every-token-moved reading.
SCORED = ("The history of the printing press begins in the fifteenth century, when a "
          "goldsmith from Mainz began to cast movable metal type for his workshop")


def _offered(judge: Judge, exchange: Exchange) -> Any:
    """The body when the server answered prompt_logprobs, else None (recorded as N/A)."""
    if judge.refused(exchange):
        judge.record([exchange], [], nothing_to_judge(
            "the server refused prompt_logprobs with a clean 4xx", prompt.PROMPT_001,
            prompt.PROMPT_002, prompt.PROMPT_003) + prompt.describe_refusal(exchange.text))
        return None
    return judge.applicable(exchange, feature="prompt_logprobs")


def test_prompt_logprobs_shape_counts_and_ranks(api, model, judge, optional_tokenizer):
    """k = 0, 1 and 5, on a text prompt and (the tokenizer known) the same as token ids,
    whose entries must each hold their prompt token."""
    prompts: list[Any] = [SCORED]
    if optional_tokenizer is not None:
        prompts.append(optional_tokenizer.encode(SCORED, add_special_tokens=False))
    requests = [("/completions", completion(model, p, max_tokens=1, prompt_logprobs=k))
                for p in prompts for k in (0, 1, 5)]
    for exchange in api.post_many(requests):
        if _offered(judge, exchange) is None:
            return


def test_prompt_logprobs_equal_echo(api, model, judge, tolerance, optional_tokenizer):
    """The prompt's own token at each position, read from prompt_logprobs, against echo's
    token_logprobs for the same prompt (as token ids when the tokenizer is known)."""
    ids = optional_tokenizer.encode(SCORED, add_special_tokens=False) \
        if optional_tokenizer is not None else None
    sent = ids if ids is not None else SCORED
    scored, echoed = api.post_many([
        ("/completions", completion(model, sent, max_tokens=1, prompt_logprobs=1)),
        ("/completions", echo_scoring(model, sent))])
    body = _offered(judge, scored)
    if body is None:
        return
    echo = first_logprobs(judge.applicable(echoed, feature="echo"))
    rows = prompt.prompt_logprobs_of(body["choices"][0], body)
    judge.check([scored, echoed], prompt.check_matches_echo, rows, ids, echo["tokens"],
                echo["token_logprobs"], tolerance)


def test_prompt_logprobs_in_a_stream_get_an_answer_or_a_clean_refusal(api, model, judge):
    """vLLM documents that prompt_logprobs are not available with stream (a 400); a 5xx or
    a broken stream is an ERROR (ERR-004)."""
    exchange = api.completions(completion(model, SCORED, max_tokens=1, prompt_logprobs=1,
                                          stream=True))
    if not judge.refused(exchange):
        judge.ok(exchange, feature="prompt_logprobs in a stream")


def test_prompt_logprobs_of_a_shared_prefix_are_equal(api, model, judge, tolerance,
                                                       optional_tokenizer):
    """Two prompts that share their first tokens, scored by prompt_logprobs: causal attention
    gives the shared positions the same values (CONS-001, CONS-004; a stale prefix-cache
    row, vllm-project/vllm#42019, moves them). Token ids when the tokenizer is known."""
    second_text = SCORED.rsplit(" ", 3)[0] + " type and sold printed books across Europe"
    prompts: list[Any] = [SCORED, second_text]
    if optional_tokenizer is not None:
        prompts = [optional_tokenizer.encode(p, add_special_tokens=False) for p in prompts]
    exchanges = api.post_many([("/completions", completion(model, p, max_tokens=1,
                                                           prompt_logprobs=0)) for p in prompts])
    bodies = [_offered(judge, e) for e in exchanges]
    if any(b is None for b in bodies):
        return
    rows = [prompt.prompt_logprobs_of(b["choices"][0], b) for b in bodies]
    ids = prompts if optional_tokenizer is not None else [None, None]
    keys = [[sorted(r)[0] if isinstance(r, dict) and len(r) == 1 else None for r in row]
            for row in rows]  # k = 0: the prompt's own token alone
    shared = 0
    while shared < min(len(keys[0]), len(keys[1])) and keys[0][shared] == keys[1][shared] and \
            (ids[0] is None or ids[0][shared] == ids[1][shared]):
        shared += 1
    assert shared >= 24, f"the two prompts should share at least 24 tokens, got {shared}"
    values = [prompt.own_values(row[:shared], i[:shared] if i else None, None)[0]
              if i else [None] + [next(iter(e.values()))["logprob"] for e in row[1:shared]]
              for row, i in zip(rows, ids, strict=True)]
    judge.measure_also(consistency.MEASURE, {"first": values[0], "again": values[1],
                                             "how": "prompt_logprobs after a shared prefix"})
    judge.check(exchanges, consistency.check_same_prompt, values[0], values[1],
                "prompt_logprobs after a shared prefix", tolerance)
