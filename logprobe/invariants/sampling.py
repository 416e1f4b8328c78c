"""SMP: what temperature 0, repetition and n > 1 imply for the numbers."""

from __future__ import annotations

import math
from typing import Any

from logprobe.invariants import asked
from logprobe.invariants.core import (
    Level,
    Violation,
    checks,
    invariant,
    is_number,
    nothing_to_judge,
)
from logprobe.invariants.readers import chat_content, choices, completion_logprobs, readable, usage
from logprobe.invariants.text import leaked_prefix
from logprobe.tolerance import DEFAULT, TIE, Drift, Tolerance

EPS_TIE = TIE

SMP_001 = invariant(
    "SMP-001", Level.MUST,
    "at temperature 0 each generated token is the argmax of its alternatives (ties within "
    "1e-5): none of them more likely, and it is listed among them unless tied with the first",
    "greedy decoding",
)
SMP_002 = invariant(
    "SMP-002", Level.SHOULD,
    "identical temperature-0 requests give identical tokens and logprobs (within the "
    "logprob tolerance: batching changes the numerics on GPUs)",
    "determinism; bit-identical only in batch-invariant mode",
)
SMP_003 = invariant(
    "SMP-003", Level.INFO,
    "logprob mode: raw (independent of temperature, vLLM default, OpenAI) or processed",
    "SGLang and TGI return temperature-scaled logprobs",
)
SMP_004 = invariant(
    "SMP-004", Level.MUST,
    "with n > 1 each choice's logprobs describe its own tokens",
    "OpenAI reference: logprobs per choice",
)


def _generated_positions(request: dict[str, Any], response: Any, logprobs: dict[str, Any]) -> range:
    total = len(logprobs["token_logprobs"])
    if request.get("echo"):
        prompt_tokens = usage(response, "prompt_tokens")
        if prompt_tokens is None or len(choices(response)) != 1:
            return range(0)
        return range(min(prompt_tokens, total), total)
    return range(total)


@checks(SMP_001, when=asked.logprobs)
def check_greedy_argmax(request: dict[str, Any], response: Any) -> list[Violation]:
    if request.get("temperature") != 0:
        return nothing_to_judge("not a temperature-0 request", SMP_001)
    if request.get("logit_bias"):  # the argmax of the biased logits, not of raw logprobs
        return nothing_to_judge("logit_bias moves the greedy token", SMP_001)
    found: list[Violation] = []
    compared = 0
    for choice in choices(response):
        i = choice.get("index")
        logprobs = completion_logprobs(choice)
        if logprobs is not None:
            tops = logprobs.get("top_logprobs") or []
            for p in _generated_positions(request, response, logprobs):
                value = logprobs["token_logprobs"][p]
                top = tops[p] if p < len(tops) else None
                if not is_number(value) or not isinstance(top, dict) or not top:
                    continue
                compared += 1
                best = max((v for v in top.values() if is_number(v)), default=value)
                tokens = logprobs.get("tokens") or []
                token = tokens[p] if p < len(tokens) else None  # fewer tokens: SHAPE-002's
                where = f"choices[{i}].logprobs.token_logprobs[{p}]"
                if value < best - EPS_TIE:
                    found.append(Violation(
                        SMP_001, "a token other than the most likely was chosen at temperature 0",
                        location=where, expected=best, actual=value,
                    ))
                elif readable(token) and token not in top and abs(value - best) > EPS_TIE:
                    found.append(_unlisted(token, where, best, value))
        for p, entry in enumerate(chat_content(choice) or []):
            value = entry.get("logprob")
            alts = [a.get("logprob") for a in entry.get("top_logprobs") or [] if isinstance(a, dict)]
            alts = [a for a in alts if is_number(a)]
            compared += bool(is_number(value) and alts)
            where = f"choices[{i}].logprobs.content[{p}]"
            if is_number(value) and alts and value < max(alts) - EPS_TIE:
                found.append(Violation(
                    SMP_001, "a token other than the most likely was chosen at temperature 0",
                    location=where, expected=max(alts), actual=value,
                ))
            elif is_number(value) and alts and readable(entry.get("token")) \
                    and abs(value - max(alts)) > EPS_TIE and entry.get("token") not in {
                        a.get("token") for a in entry.get("top_logprobs") or []
                        if isinstance(a, dict)}:
                found.append(_unlisted(entry.get("token"), where, max(alts), value))
    if not compared:
        return nothing_to_judge("no generated token came with its alternatives", SMP_001)
    return found


def _unlisted(token: Any, where: str, best: float, value: float) -> Violation:
    """The greedy token missing from alternatives that are not tied with it: more likely
    than all of them, it should lead them; the list belongs to another position."""
    return Violation(SMP_001, f"the token chosen at temperature 0, {token!r}, is not among its "
                     "alternatives and not tied with the first of them", location=where,
                     expected=best, actual=value)


def token_values(response: Any) -> list[tuple[list[str], list[Any]]]:
    """(tokens, logprobs) per choice, from either shape."""
    out = []
    for choice in choices(response):
        logprobs = completion_logprobs(choice)
        if logprobs is not None:
            out.append((list(logprobs.get("tokens") or []), list(logprobs["token_logprobs"])))
            continue
        content = chat_content(choice) or []
        out.append(([e.get("token") for e in content], [e.get("logprob") for e in content]))
    return out


@checks(SMP_002)
def check_repeatable(responses: list[Any], tolerance: Tolerance = DEFAULT) -> list[Violation]:
    if len(responses) < 2:
        return nothing_to_judge("fewer than two responses", SMP_002)
    if not any(values for response in responses for _, values in token_values(response)):
        # Five answers with "logprobs": null are alike, and say nothing about repeatability.
        return nothing_to_judge("no logprobs came back to compare", SMP_002)
    reference = token_values(responses[0])
    found = []
    for r, response in enumerate(responses[1:], start=1):
        other = token_values(response)
        for c, ((tokens_a, values_a), (tokens_b, values_b)) in enumerate(
            zip(reference, other, strict=False)
        ):
            if tokens_a != tokens_b:
                found.append(Violation(SMP_002, f"run {r} chose other tokens",
                                       location=f"choices[{c}]", expected=tokens_a, actual=tokens_b))
                continue
            drift = Drift.between(values_a, values_b)
            if drift.over(tolerance) or drift.systematic(tolerance):
                found.append(Violation(SMP_002, f"run {r} logprobs differ ({drift.summary()})",
                                       location=f"choices[{c}]", expected=tolerance.describe(),
                                       actual=drift.max))
    return found


@checks(SMP_003)
def describe_logprob_mode(low_temperature: Any, high_temperature: Any) -> list[Violation]:
    """Compare the first position's alternatives at two temperatures (same prompt).

    The sampled tokens may differ between the two, so the comparison uses the
    alternatives both responses list; raw logprobs are the same at any temperature.
    """
    low, high = _first_alternatives(low_temperature), _first_alternatives(high_temperature)
    shared = sorted(set(low) & set(high))
    if not shared:
        return nothing_to_judge("no alternative listed at both temperatures", SMP_003)
    worst = max(abs(low[t] - high[t]) for t in shared)
    mode = "raw (temperature does not change logprobs)" if worst <= DEFAULT.per_token else (
        f"processed (an alternative's logprob moves by {worst:.3f} between temperatures)"
    )
    return [Violation(SMP_003, f"logprob mode: {mode}", actual={t: (low[t], high[t]) for t in shared[:3]})]


def _first_alternatives(response: Any) -> dict[str, float]:
    for choice in choices(response):
        logprobs = completion_logprobs(choice)
        if logprobs is not None:
            tops = logprobs.get("top_logprobs") or []
            top = tops[0] if tops else None
            if isinstance(top, dict):
                return {k: v for k, v in top.items() if is_number(v)}
        content = chat_content(choice)
        if content:
            return {a.get("token"): a.get("logprob") for a in content[0].get("top_logprobs") or []
                    if isinstance(a, dict) and is_number(a.get("logprob"))}
    return {}


@checks(SMP_004, when=asked.several_choices)
def check_choices_own_logprobs(request: dict[str, Any], response: Any) -> list[Violation]:
    found = []
    cs = choices(response)
    n = request.get("n", 1)
    if isinstance(n, int) and len(cs) != n:
        found.append(Violation(SMP_004, "wrong number of choices", expected=n, actual=len(cs)))
    seen: dict[tuple[Any, ...], int] = {}
    for choice in cs:
        i = choice.get("index")
        logprobs = completion_logprobs(choice)
        if logprobs is None:
            continue
        tokens = logprobs.get("tokens") or []
        values = logprobs["token_logprobs"]
        text = choice.get("text")
        if len(tokens) != len(values):
            found.append(Violation(SMP_004, "tokens and token_logprobs differ in length",
                                   location=f"choices[{i}]", expected=len(tokens), actual=len(values)))
        if all(readable(t) for t in tokens) \
                and isinstance(text, str) and "".join(tokens) != text \
                and not leaked_prefix(text, "".join(tokens)) \
                and choice.get("finish_reason") == "length":  # a leak is TXT-001's
            found.append(Violation(SMP_004, "this choice's tokens do not spell its own text",
                                   location=f"choices[{i}]", expected=text, actual="".join(tokens)))
        key = tuple(round(v, 6) if is_number(v) and math.isfinite(v) else None for v in values)
        if key in seen and tokens and seen[key] != i:
            other = cs[[c.get("index") for c in cs].index(seen[key])]
            other_lp = completion_logprobs(other) or {}
            if other_lp.get("tokens") != tokens:
                found.append(Violation(
                    SMP_004, f"choices {seen[key]} and {i} have different tokens but the same "
                    "logprobs (copied from another choice?)", location=f"choices[{i}]",
                ))
        seen.setdefault(key, i)
    return found


SMP_005 = invariant(
    "SMP-005", Level.MUST,
    "where logprobs are raw (independent of temperature, SMP-003), a token forced with "
    "logit_bias is reported with its logprob before the bias, within the same-token tolerance",
    "lm-eval's logit_bias scoring (EleutherAI/lm-evaluation-harness PR #4012, open: its "
    "llama.cpp backend forces each continuation token and reads its logprob); llama.cpp's "
    "server reports the pre-bias value (a forced ' the' at -2.66), vLLM's raw mode too",
)
SMP_006 = invariant(
    "SMP-006", Level.INFO,
    "what a logit_bias-forced token is reported at where logprobs are processed, or where "
    "the bias was not applied: lm-eval's logit_bias scoring would score wrongly",
    "processed logprobs include the bias by design (vLLM --logprobs-mode processed_logprobs)",
)
FORCING_BIAS = 100  # OpenAI's maximum: the token is chosen whatever its logprob


def logprob_mode_raw(low_temperature: Any, high_temperature: Any) -> bool | None:
    """True if the first position's alternatives do not move with temperature (raw), False
    if they do (processed), None if no alternative is listed at both (see SMP-003)."""
    low, high = _first_alternatives(low_temperature), _first_alternatives(high_temperature)
    shared = set(low) & set(high)
    if not shared:
        return None
    return max(abs(low[t] - high[t]) for t in shared) <= DEFAULT.per_token


@checks(SMP_005, SMP_006)
def check_forced_token(forced_text: str, generated: Any, reported: Any, unbiased: Any,
                       raw: bool | None, tolerance: Tolerance = DEFAULT) -> list[Violation]:
    """``forced_text``: the token forced with logit_bias ``FORCING_BIAS``; ``generated``: the
    token the server generated; ``reported``: its logprob there; ``unbiased``: the forced
    token's logprob scored without the bias (an echo of the prompt followed by it);
    ``raw``: ``logprob_mode_raw``."""
    if generated != forced_text:
        return [*nothing_to_judge("the bias was not applied", SMP_005), Violation(
            SMP_006, f"logit_bias {FORCING_BIAS} did not force {forced_text!r} (the server "
            f"generated {generated!r}): lm-eval's logit_bias scoring would read another "
            "token's logprob", expected=forced_text, actual=generated)]
    if not (is_number(reported) and is_number(unbiased)):
        return nothing_to_judge("no logprob to compare", SMP_005, SMP_006)
    if abs(reported - unbiased) <= tolerance.per_token:
        return []
    what = (f"the forced token {forced_text!r} is reported at {reported:.4g}, its logprob before "
            f"the bias is {unbiased:.4g}: lm-eval's logit_bias scoring (PR #4012) would score "
            "every forced token at about 0, every choice alike")
    if raw:
        return [Violation(SMP_005, what, expected=unbiased, actual=reported)]
    mode = "processed" if raw is False else "of an unknown mode"
    return [*nothing_to_judge(f"logprobs are {mode}", SMP_005),
            Violation(SMP_006, f"{what} (logprobs {mode})", expected=unbiased, actual=reported)]
