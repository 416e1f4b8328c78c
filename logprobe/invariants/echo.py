"""ECHO: prompt logprobs returned with ``echo: true``: where lm-eval gets its scores."""

from __future__ import annotations

from typing import Any

from logprobe.invariants import asked
from logprobe.invariants.core import (
    Level,
    Verdict,
    Violation,
    checks,
    invariant,
    is_number,
    nothing_to_judge,
)
from logprobe.invariants.readers import choices, completion_logprobs, usage
from logprobe.tolerance import DEFAULT, Drift, Tolerance

ECHO_001 = invariant(
    "ECHO-001", Level.MUST,
    "with echo the text starts with the prompt and the tokens cover prompt + generated tokens",
    "OpenAI reference (echo); lm-eval reads prompt logprobs from it",
)
ECHO_002 = invariant(
    "ECHO-002", Level.MUST,
    "with echo, index 0 of token_logprobs and top_logprobs is null and no other index is",
    "ggml-org/llama.cpp#27174 acceptance rule; OpenAI behaviour",
)
ECHO_003 = invariant(
    "ECHO-003", Level.MUST,
    "max_tokens: 0 with echo returns exactly the prompt's logprobs, or a clean 4xx; never a 5xx",
    "lm-eval 0.4.0-0.4.3 sent max_tokens: 0",
)
ECHO_004 = invariant(
    "ECHO-004", Level.MUST,
    "prompt logprobs of a shared prefix are equal (within the logprob tolerance) across "
    "requests that differ after it",
    "causal attention: a token's logprob depends only on what precedes it",
)


def _token_ids(prompt: Any) -> bool:
    return isinstance(prompt, list) and bool(prompt) and all(
        isinstance(t, int) and not isinstance(t, bool) for t in prompt)


def _echo_dropped(choice: dict[str, Any]) -> Violation:
    return Violation(ECHO_001, "echo was asked but no logprobs came back",
                     location=f"choices[{choice.get('index')}].logprobs", verdict=Verdict.IGNORED)


@checks(ECHO_001, ECHO_002, when=asked.echo)
def check_echo(
    request: dict[str, Any], response: Any, prompt_lengths: list[int] | None = None
) -> list[Violation]:
    """``prompt_lengths``: tokens per prompt when known from a tokenizer; token-id prompts
    give their own."""
    found = []
    prompt = request.get("prompt")
    prompts = prompt if isinstance(prompt, list) and prompt and isinstance(prompt[0], str | list) \
        else [prompt]
    if prompt_lengths is None and all(_token_ids(p) for p in prompts):
        prompt_lengths = [len(p) for p in prompts]
    cs = choices(response)
    if prompt_lengths is None and len(prompts) == 1 and usage(response, "prompt_tokens"):
        prompt_lengths = [usage(response, "prompt_tokens")]  # type: ignore[list-item]
    max_tokens = request.get("max_tokens")
    for n, choice in enumerate(cs):
        where = f"choices[{choice.get('index')}]"
        logprobs = completion_logprobs(choice)
        if logprobs is None:
            found.append(_echo_dropped(choice))
            continue
        text = choice.get("text")
        this_prompt = prompts[n] if n < len(prompts) else None
        if isinstance(this_prompt, str) and isinstance(text, str) and not text.startswith(this_prompt):
            found.append(Violation(
                ECHO_001, "the returned text does not start with the prompt",
                location=f"{where}.text", expected=this_prompt, actual=text[: len(this_prompt) + 20],
                verdict=Verdict.IGNORED if len(text) < len(this_prompt) else Verdict.FAIL,
            ))
        values = logprobs["token_logprobs"]
        tops = logprobs.get("top_logprobs") or []
        if prompt_lengths is not None and n < len(prompt_lengths) \
                and len(values) < prompt_lengths[n]:
            found.append(Violation(
                ECHO_001, f"{len(values)} entries cannot cover {prompt_lengths[n]} prompt tokens",
                location=f"{where}.logprobs.token_logprobs", expected=f">= {prompt_lengths[n]}",
                actual=len(values), verdict=Verdict.IGNORED,
            ))
        elif prompt_lengths is not None and n < len(prompt_lengths) and isinstance(max_tokens, int):
            expected = prompt_lengths[n] + max_tokens
            if choice.get("finish_reason") == "length" and len(values) != expected:
                found.append(Violation(
                    ECHO_001,
                    f"{len(values)} entries for {prompt_lengths[n]} prompt tokens + "
                    f"{max_tokens} generated",
                    location=f"{where}.logprobs.token_logprobs", expected=expected,
                    actual=len(values),
                ))
        if values and values[0] is not None:
            found.append(Violation(ECHO_002, "token_logprobs[0] must be null (nothing precedes it)",
                                   location=f"{where}.logprobs.token_logprobs[0]", actual=values[0]))
        if tops and tops[0] is not None:
            found.append(Violation(ECHO_002, "top_logprobs[0] must be null",
                                   location=f"{where}.logprobs.top_logprobs[0]", actual=tops[0]))
        nulls = [p for p, v in enumerate(values) if p > 0 and not is_number(v)]
        nulls += [p for p, t in enumerate(tops) if p > 0 and not isinstance(t, dict)]
        if nulls:
            found.append(Violation(ECHO_002, "null or missing logprob after index 0",
                                   location=f"{where}.logprobs", actual=sorted(set(nulls))[:10]))
    return found


@checks(ECHO_003)
def check_echo_max_tokens_zero(
    request: dict[str, Any], status: int | None, response: Any, prompt_tokens: int | None
) -> list[Violation]:
    if status is not None and 400 <= status < 500:
        return []  # a clean refusal is allowed (its shape is SHAPE-004's)
    if status != 200:
        return [Violation(ECHO_003, "max_tokens: 0 with echo must not fail the server",
                          expected="200 or 4xx", actual=status)]
    found = []
    for choice in choices(response):
        logprobs = completion_logprobs(choice)
        where = f"choices[{choice.get('index')}]"
        if logprobs is None:
            found.append(Violation(ECHO_003, "no logprobs came back", location=where,
                                   verdict=Verdict.IGNORED))
            continue
        n = len(logprobs["token_logprobs"])
        if prompt_tokens is not None and n != prompt_tokens:
            found.append(Violation(ECHO_003, "not exactly the prompt's logprobs",
                                   location=f"{where}.logprobs.token_logprobs",
                                   expected=prompt_tokens, actual=n))
        prompt = request.get("prompt")
        if isinstance(prompt, str) and choice.get("text") != prompt:
            found.append(Violation(ECHO_003, "text must be exactly the prompt",
                                   location=f"{where}.text", expected=prompt,
                                   actual=choice.get("text")))
    return found


@checks(ECHO_004)
def check_shared_prefix(first: Any, second: Any, prefix_tokens: int,
                        tolerance: Tolerance = DEFAULT) -> list[Violation]:
    """Two echo responses whose prompts share their first ``prefix_tokens`` tokens."""
    a_choices, b_choices = choices(first), choices(second)
    a = completion_logprobs(a_choices[0]) if a_choices else None
    b = completion_logprobs(b_choices[0]) if b_choices else None
    if a is None or b is None:
        return nothing_to_judge("an echo without logprobs (ECHO-001 judges that)", ECHO_004)
    drift = Drift.between(a["token_logprobs"][1:prefix_tokens], b["token_logprobs"][1:prefix_tokens])
    if not drift.n:
        return nothing_to_judge("no prefix token has a logprob in both", ECHO_004)
    found = [Violation(ECHO_004, "the same prefix token got different logprobs in two requests",
                       location=f"token_logprobs[{p + 1}]", expected=tolerance.describe(),
                       actual=round(d, 6)) for p, d in drift.over(tolerance)]
    if drift.systematic(tolerance):
        found.append(Violation(ECHO_004, "the shared prefix's logprobs differ systematically "
                               f"({drift.summary()})", expected=tolerance.describe(),
                               actual=round(drift.median, 6)))
    return found
