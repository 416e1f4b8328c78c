"""CONS: the same prompt scored alike however it reaches the server (see the invariants'
module for the sources and the tolerance)."""

from __future__ import annotations

from typing import Any

from cases import SEED, completion

from logprobe.client import Exchange
from logprobe.forcing import echo_scoring, judge_choices_forced
from logprobe.invariants import consistency, shape
from logprobe.invariants.core import nothing_to_judge
from logprobe.invariants.readers import token_logprobs
from logprobe.judge import Judge

# Each test scores a prompt of its own, of 30 tokens or more (CONS-004 judges whether a
# comparison's tokens moved together from 24 on): so the first time a test sends it is the
# first time the server sees it, whatever the other tests (in other workers) sent before.
OPENING = ("The history of the printing press begins in the fifteenth century, when Johannes "
           "Gutenberg, a goldsmith from the German city of Mainz, began")
PROMPT = OPENING + " to cast movable metal type"
SHARED = OPENING + " to set lines of type by hand"
SHARES_ITS_PREFIX = OPENING + " to print a Bible"
LISTED = OPENING + " to build a wooden screw press"
CROWDED = OPENING + " to mix an ink that held to metal"
OTHERS = ["Water boils at one hundred degrees", "The square root of sixteen is four",
          "Mount Everest is the highest mountain", "A haiku has three lines of verse",
          "Light travels faster than sound", "The Pacific is the largest ocean",
          "Bees make honey from the nectar of flowers"]


def _values(judge: Judge, exchange: Exchange, index: int = 0) -> list[Any] | None:
    """token_logprobs of the choice for prompt ``index``; None if it has none (ECHO-001 and
    the shape checks judge that)."""
    return token_logprobs(judge.response(exchange, shape.check_completions_shape,
                                         feature="echo"), index)


def _compare(judge: Judge, exchanges: list[Exchange], first: list[Any] | None,
             again: list[Any] | None, how: str) -> None:
    if first is None or again is None:
        judge.record(exchanges, [], nothing_to_judge(
            "an echo without logprobs", consistency.CONS_001, consistency.CONS_002))
        return
    judge.measure_also(consistency.MEASURE, {"first": first, "again": again, "how": how})
    judge.check(exchanges, consistency.check_same_prompt, first, again, how)


def test_same_prompt_sent_again(api, model, judge):
    first = api.completions(echo_scoring(model, PROMPT))
    again = api.completions(echo_scoring(model, PROMPT))
    _compare(judge, [first, again], _values(judge, first), _values(judge, again),
             "sent again (its prefix cached)")


def test_same_prompt_after_one_sharing_its_prefix(api, model, judge):
    first = api.completions(echo_scoring(model, SHARED))
    other = api.completions(echo_scoring(model, SHARES_ITS_PREFIX))
    judge.ok(other, feature="echo")
    again = api.completions(echo_scoring(model, SHARED))
    _compare(judge, [first, other, again], _values(judge, first), _values(judge, again),
             "after a prompt sharing its prefix")


def test_same_prompt_inside_a_list(api, model, judge):
    alone = api.completions(echo_scoring(model, LISTED))
    listed = api.completions(echo_scoring(model, [OTHERS[0], LISTED, OTHERS[1]]))
    _compare(judge, [alone, listed], _values(judge, alone), _values(judge, listed, index=1),
             "second of a list of three prompts")


def test_same_prompt_among_concurrent_requests(api, model, judge):
    alone = api.completions(echo_scoring(model, CROWDED))
    crowd = api.post_many([("/completions", echo_scoring(model, p)) for p in [CROWDED, *OTHERS]])
    _compare(judge, [alone, crowd[0]], _values(judge, alone), _values(judge, crowd[0]),
             f"sent with {len(OTHERS)} other requests in flight")


def test_each_choice_of_n_scores_its_own_tokens(api, model, judge, optional_tokenizer):
    """n = 3 sampled at temperature 1: each choice's logprobs against its tokens echoed
    after the prompt (CONS-003). A token-id prompt when the tokenizer is known, so no
    choice is lost to retokenizing; text when the server refuses token ids."""
    def sampled(prompt: Any) -> Exchange:
        return api.completions(completion(model, prompt, n=3, temperature=1.0, seed=SEED,
                                          max_tokens=8, logprobs=1))

    exchange = sampled(PROMPT if optional_tokenizer is None
                       else optional_tokenizer.encode(PROMPT, add_special_tokens=False))
    if exchange.status != 200 and optional_tokenizer is not None:
        # token-id prompts refused (llama-cpp-python: a 500; ECHO and ERR judge that)
        judge.measure("prompt", f"text (a token-id prompt answered HTTP {exchange.status})")
        exchange = sampled(PROMPT)
    judge.applicable(exchange, feature="n=3 with logprobs")
    judge_choices_forced(judge, api, exchange, optional_tokenizer)
