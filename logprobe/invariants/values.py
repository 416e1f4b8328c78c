"""VAL: the numbers themselves: finite, <= 0, consistent with their alternatives."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
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
from logprobe.invariants.readers import chat_content, choices, completion_logprobs, readable
from logprobe.tolerance import MASS_SLACK as EPS_MASS
from logprobe.tolerance import SAME_VALUE as EPS_SELF

SPEC_FLOOR = -9999.0

VAL_001 = invariant(
    "VAL-001", Level.MUST,
    "every logprob is a finite JSON number <= 0 (1e-6 slack); null only where a rule allows it",
    "RFC 8259 (no NaN/Infinity); log of a probability",
)
VAL_002 = invariant(
    "VAL-002", Level.SHOULD,
    "impossible tokens are floored at -9999.0, not at the float's lowest value",
    "OpenAI reference (-9999.0 sentinel); llama.cpp returns float lowest",
)
VAL_003 = invariant(
    "VAL-003", Level.MUST,
    "the sampled token's logprob equals its own entry among the alternatives (1e-6)",
    "OpenAI reference: top_logprobs are the same distribution",
)
VAL_004 = invariant(
    "VAL-004", Level.MUST,
    "the alternatives' probabilities sum to at most 1 + 1e-2 at every position",
    "probability axioms",
)
VAL_005 = invariant(
    "VAL-005", Level.MUST,
    "chat alternatives are sorted by logprob, descending",
    "OpenAI reference: 'most likely tokens'; vllm-project/vllm#4795",
)
VAL_006 = invariant(
    "VAL-006", Level.INFO,
    "completions top_logprobs objects list keys by descending logprob (the sampled token may lead)",
    "completions top_logprobs is an unordered JSON object",
)
VAL_007 = invariant(
    "VAL-007", Level.MUST,
    "a chat top_logprobs list names each token once (by token and bytes)",
    "OpenAI reference (distinct most likely tokens); huggingface/text-generation-inference#1852 "
    "(duplicates); sgl-project/sglang#2088 (copied alternatives)",
)


@checks(VAL_007, when=asked.chat_logprobs)
def check_unique_alternatives(request: dict[str, Any], response: Any) -> list[Violation]:
    """Tokens a server cannot tell apart (partial UTF-8 pieces: "" or U+FFFD, vLLM's bytes
    []) may repeat; a readable token twice is a copied or duplicated entry."""
    found: list[Violation] = []
    lists = 0
    for choice in choices(response):
        for p, entry in enumerate(chat_content(choice) or []):
            alts = [a for a in entry.get("top_logprobs") or [] if isinstance(a, dict)]
            lists += bool(alts)
            keys = [(a.get("token"), tuple(a.get("bytes") or ())) for a in alts
                    if readable(a.get("token"))]
            repeated = sorted({k[0] for k in keys if keys.count(k) > 1})
            if repeated:
                found.append(Violation(
                    VAL_007, f"{len(keys) - len(set(keys))} repeated alternatives",
                    location=f"choices[{choice.get('index')}].logprobs.content[{p}].top_logprobs",
                    actual=repeated[:5]))
    if not lists:
        return nothing_to_judge("no chat alternatives", VAL_007)
    return found


@checks(VAL_001)
def check_json_literals(literals: list[str]) -> list[Violation]:
    """Bare NaN/Infinity literals the client saw while parsing the body (JSON forbids them)."""
    if not literals:
        return []
    return [Violation(VAL_001, "the JSON body contains " + ", ".join(sorted(set(literals)))
                      + " (not valid JSON)")]


def iter_values(request: dict[str, Any], response: Any) -> Iterator[tuple[str, Any, bool]]:
    """Every logprob value in a response: (location, value, null_allowed).

    Index 0 of an echo is the only null the completions shape allows, in token_logprobs
    and in top_logprobs alike (nothing precedes the first prompt token); a null top_logprobs
    entry is yielded as a null value so that it is judged like one.
    """
    echo = bool(request.get("echo"))
    for choice in choices(response):
        i = choice.get("index")
        logprobs = completion_logprobs(choice)
        if logprobs is not None:
            for p, value in enumerate(logprobs["token_logprobs"]):
                yield f"choices[{i}].logprobs.token_logprobs[{p}]", value, echo and p == 0
            tops = logprobs.get("top_logprobs")
            for p, top in enumerate(tops if isinstance(tops, list) else []):
                if isinstance(top, dict):
                    for token, value in top.items():
                        yield f"choices[{i}].logprobs.top_logprobs[{p}][{token!r}]", value, False
                elif top is None:
                    yield f"choices[{i}].logprobs.top_logprobs[{p}]", None, echo and p == 0
        for p, entry in enumerate(chat_content(choice) or []):
            yield f"choices[{i}].logprobs.content[{p}].logprob", entry.get("logprob"), False
            for a, alt in enumerate(entry.get("top_logprobs") or []):
                if isinstance(alt, dict):
                    where = f"choices[{i}].logprobs.content[{p}].top_logprobs[{a}].logprob"
                    yield where, alt.get("logprob"), False


@checks(VAL_001, VAL_002, when=asked.logprobs)
def check_logprob_values(request: dict[str, Any], response: Any) -> list[Violation]:
    found = []
    seen = 0
    for where, value, null_ok in iter_values(request, response):
        seen += 1
        if value is None:
            if not null_ok:
                found.append(Violation(VAL_001, "null logprob (only index 0 of an echo may be "
                                       "null)", location=where))
        elif not is_number(value):
            found.append(Violation(VAL_001, f"not a JSON number: {type(value).__name__}",
                                   location=where, actual=value))
        elif not math.isfinite(value):
            found.append(Violation(VAL_001, "non-finite logprob (NaN or Infinity in the JSON)",
                                   location=where, actual=value))
        elif value > EPS_SELF:
            found.append(Violation(VAL_001, "positive logprob", location=where,
                                   expected="<= 0", actual=value))
        elif value < SPEC_FLOOR:
            found.append(Violation(VAL_002, "below the -9999.0 floor", location=where,
                                   expected=">= -9999.0", actual=value))
    if not seen:
        return nothing_to_judge("the response carries no logprobs", VAL_001, VAL_002)
    return found


def _finite(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)


@checks(VAL_003, VAL_004, VAL_005, VAL_006, when=asked.logprobs)
def check_alternatives(request: dict[str, Any], response: Any) -> list[Violation]:
    found: list[Violation] = []
    completion_rows = chat_rows = 0
    for choice in choices(response):
        i = choice.get("index")
        logprobs = completion_logprobs(choice)
        if logprobs is not None:
            rows, more = _completion_alternatives(i, logprobs)
            completion_rows += rows
            found += more
        for p, entry in enumerate(chat_content(choice) or []):
            alts = [a for a in entry.get("top_logprobs") or [] if isinstance(a, dict)]
            chat_rows += bool(alts)
            found += _chat_alternatives(f"choices[{i}].logprobs.content[{p}].top_logprobs",
                                        entry, alts)
    if not completion_rows and not chat_rows:
        return nothing_to_judge("no position carries alternatives", VAL_003, VAL_004,
                                VAL_005, VAL_006)
    if not chat_rows:
        found += nothing_to_judge("no chat alternatives (the order rule is chat's)", VAL_005)
    if not completion_rows:
        found += nothing_to_judge("no completions alternatives", VAL_006)
    return found


def _completion_alternatives(i: Any, logprobs: dict[str, Any]) -> tuple[int, list[Violation]]:
    """One choice's completions alternatives: how many rows carry them, and what is wrong."""
    found: list[Violation] = []
    rows = 0
    tokens = logprobs.get("tokens") or []
    tops = logprobs.get("top_logprobs") or []
    for p, (value, top) in enumerate(zip(logprobs["token_logprobs"], tops, strict=False)):
        if not isinstance(top, dict) or not _finite(value):
            continue
        rows += 1
        where = f"choices[{i}].logprobs.top_logprobs[{p}]"
        token = tokens[p] if p < len(tokens) else None
        # Keys are decoded strings: "" and U+FFFD pieces of different tokens collide,
        # so the entry under such a key need not be this token's own.
        if token in top and readable(token) and _finite(top[token]) \
                and abs(top[token] - value) > EPS_SELF:
            found.append(Violation(
                VAL_003, f"token {token!r} has a different logprob among the alternatives",
                location=where, expected=value, actual=top[token],
            ))
        found += _mass(where, list(top.values()))
        rest = [v for k, v in top.items() if k != token]
        if any(_finite(a) and _finite(b) and a < b - EPS_SELF
               for a, b in itertools.pairwise(rest)):
            found.append(Violation(VAL_006, "top_logprobs keys not in descending order",
                                   location=where, actual=top))
    return rows, found


def _chat_alternatives(where: str, entry: dict[str, Any],
                       alts: list[dict[str, Any]]) -> list[Violation]:
    """One chat position's alternatives: the sampled token's own value, the mass, the order."""
    found: list[Violation] = []
    value = entry.get("logprob")
    # vLLM sends a partial character as token "" with bytes []: such entries
    # cannot be told apart, so none of them is "the sampled token's own".
    token = entry.get("token")
    for alt in alts:
        same = readable(token) and alt.get("token") == token and (
            alt.get("bytes") == entry.get("bytes") or None in (alt.get("bytes"), entry.get("bytes"))
        )
        if same and _finite(value) and _finite(alt.get("logprob")) \
                and abs(alt["logprob"] - value) > EPS_SELF:
            found.append(Violation(
                VAL_003, f"token {entry.get('token')!r} has a different logprob among "
                "the alternatives", location=where, expected=value, actual=alt["logprob"],
            ))
    values = [a.get("logprob") for a in alts]
    found += _mass(where, values)
    ordered = [v for v in values if _finite(v)]
    # vLLM places the sampled token first; ignore it when judging order.
    if alts and alts[0].get("token") == entry.get("token"):
        ordered = ordered[1:]
    if any(a < b - EPS_SELF for a, b in itertools.pairwise(ordered)):
        found.append(Violation(VAL_005, "alternatives not sorted by logprob descending",
                               location=where, actual=values))
    return found


def _mass(where: str, values: list[Any]) -> list[Violation]:
    mass = sum(math.exp(v) for v in values if _finite(v) and v < 50)
    if mass > 1 + EPS_MASS:
        return [Violation(VAL_004, "alternatives' probabilities sum above 1", location=where,
                          expected="<= 1.01", actual=round(mass, 4))]
    return []
