"""Teacher forcing: scoring given tokens again by echoing them after their prompt.

Each choice of an ``n > 1`` request claims the logprobs of its own tokens. An echo of
the prompt followed by exactly those tokens scores them again (CONS-003). "Exactly" is
the hard part: a sampled choice is often not the tokenization its text would get. With
a token-id prompt and the served model's tokenizer, each token string is mapped to its
vocabulary id (no retokenizing); with a text prompt, the echo's own tokens are compared
with the choice's and a choice that retokenized otherwise is not judged.
"""

from __future__ import annotations

from typing import Any

from logprobe.client import Exchange
from logprobe.invariants import consistency
from logprobe.invariants.core import nothing_to_judge
from logprobe.invariants.readers import (
    choices,
    completion_logprobs,
    prompt_count,
    readable,
    usage,
)
from logprobe.judge import Judge
from logprobe.tokenizer import token_id_of_spelling


def echo_scoring(model: str, prompt: Any) -> dict[str, Any]:
    """The request that scores a prompt's own tokens: echoed with their logprobs, one greedy
    token generated (lm-eval's shape; some servers refuse max_tokens 0)."""
    return {"model": model, "prompt": prompt, "max_tokens": 1, "temperature": 0, "echo": True,
            "logprobs": 1}


def token_ids(tokens: list[Any], tokenizer: Any) -> list[int] | None:
    """The vocabulary id of each token string, or None if any is unreadable or ambiguous,
    or the tokenizer is the server's own (it cannot list its vocabulary to map them)."""
    if tokenizer is None or not getattr(tokenizer, "independent", True) \
            or not all(readable(t) for t in tokens):
        return None
    table = token_id_of_spelling(tokenizer)
    ids = [table.get(t) for t in tokens]
    return None if None in ids else ids  # type: ignore[return-value]


def forced_echo(request: dict[str, Any], tokens: list[Any], tokenizer: Any) -> dict[str, Any] | None:
    """The echo request scoring ``tokens`` after ``request``'s prompt (greedy, one token
    generated), or None when it cannot be built."""
    prompt = request.get("prompt")
    if isinstance(prompt, list) and prompt and all(isinstance(i, int) for i in prompt):
        ids = token_ids(tokens, tokenizer)
        forced: Any = None if ids is None else [*prompt, *ids]
    elif isinstance(prompt, str) and all(isinstance(t, str) for t in tokens):
        forced = prompt + "".join(tokens)
    else:
        forced = None
    return None if forced is None else echo_scoring(request.get("model"), forced)


def forced_values(body: Any, tokens: list[Any]) -> list[Any] | None:
    """The echo's logprobs of ``tokens`` (the entries just before the generated ones), or
    None when the echo did not tokenize them as given."""
    found = choices(body)
    logprobs = completion_logprobs(found[0]) if found else None
    if logprobs is None:
        return None
    generated = usage(body, "completion_tokens")
    generated = 1 if generated is None else generated
    echoed = list(logprobs.get("tokens") or [])
    end = len(echoed) - generated
    start = end - len(tokens)
    if start < 1 or echoed[start:end] != list(tokens):
        return None
    return list(logprobs["token_logprobs"][start:end])


def sampled_at_temperature_one(exchange: Exchange) -> bool:
    """An n > 1 completions request whose choices can be scored again: sampled at
    temperature 1 without truncation (raw and processed logprobs coincide there), with
    logprobs, no echo, not streamed, and answered."""
    request = exchange.request_json
    n = request.get("n")
    return (exchange.status == 200 and isinstance(n, int) and n > 1
            and request.get("temperature", 1) == 1 and request.get("top_p", 1) == 1
            and request.get("top_k", -1) in (-1, 0, None) and request.get("logprobs") is not None
            and not request.get("echo") and not request.get("stream")
            and "messages" not in request and prompt_count(request) == 1)


def judge_choices_forced(judge: Judge, api: Any, exchange: Exchange, tokenizer: Any) -> None:
    """Each choice's logprobs against an echo of the prompt followed by its tokens
    (CONS-003); the echoes are sent together."""
    if not sampled_at_temperature_one(exchange):
        return
    plans = []
    for choice in choices(exchange.json):
        logprobs = completion_logprobs(choice)
        tokens = list((logprobs or {}).get("tokens") or [])
        echo = forced_echo(exchange.request_json, tokens, tokenizer) if tokens else None
        if echo is not None:
            plans.append((choice.get("index"), tokens, logprobs["token_logprobs"], echo))  # type: ignore[index]
    echoes = api.post_many([(exchange.endpoint, plan[3]) for plan in plans])
    judged = 0
    for (index, tokens, values, _), echoed in zip(plans, echoes, strict=True):
        forced = forced_values(judge.ok(echoed, feature="an echo scoring a choice's tokens"),
                               tokens)
        if forced is not None:
            judged += 1
            judge.measure_also(consistency.MEASURE, {"first": values, "again": forced,
                                                     "how": f"choice {index} echoed"})
            judge.check([exchange, echoed], consistency.check_choice_scores_its_tokens,
                        values, forced, index)
    if not judged:
        judge.record([exchange], [], nothing_to_judge(
            "no choice's tokens could be echoed exactly after the prompt",
            consistency.CONS_003))
