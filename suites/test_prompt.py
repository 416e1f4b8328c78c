"""PROMPT: vLLM's prompt_logprobs extension, where a server offers it.

A server without it refuses the field with a clean 4xx or ignores it: the tests then have
nothing to judge (N/A, with a PROMPT-004 finding naming which), never a failure."""

from __future__ import annotations

from typing import Any

from cases import completion, echo_scoring, first_logprobs

from logprobe.client import Exchange
from logprobe.invariants import prompt
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
