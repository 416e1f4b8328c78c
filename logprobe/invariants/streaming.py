"""STR: streamed logprobs, concatenated, equal the non-streamed ones."""

from __future__ import annotations

from typing import Any

from logprobe.invariants import asked, sampling, values
from logprobe.invariants.core import (
    Level,
    Verdict,
    Violation,
    checks,
    invariant,
    is_number,
    nothing_to_judge,
)
from logprobe.invariants.readers import chat_content, choices, completion_logprobs, readable
from logprobe.tolerance import DEFAULT, Drift, Tolerance

STR_001 = invariant(
    "STR-001", Level.MUST,
    "streamed logprobs concatenated equal the non-streamed logprobs of the same "
    "temperature-0 request (tokens, values and alternatives within the logprob tolerance)",
    "OpenAI reference: stream chunks carry the same logprobs",
)


def assemble_stream(events: list[Any]) -> dict[str, Any]:
    """The non-streamed response a stream's chunks add up to: per choice, its text and its
    logprob entries in order (completions: tokens, token_logprobs, top_logprobs,
    text_offset; chat: the content entries), so the checks of one plain response judge
    every streamed position too. A chunk's field that is missing counts as None per token."""
    assembled: dict[int, dict[str, Any]] = {}
    for event in events:
        if not isinstance(event, dict):
            continue
        for choice in event.get("choices") or []:
            if not isinstance(choice, dict) or not isinstance(choice.get("index", 0), int):
                continue
            out = assembled.setdefault(choice.get("index", 0), {"index": choice.get("index", 0)})
            _add_text(out, choice)
            if choice.get("finish_reason") is not None:
                out["finish_reason"] = choice["finish_reason"]
            logprobs = choice.get("logprobs")
            if not isinstance(logprobs, dict):
                continue
            if isinstance(logprobs.get("token_logprobs"), list):
                into = out.setdefault("logprobs", {k: [] for k in _COMPLETION_FIELDS})
                count = len(logprobs["token_logprobs"])
                for key in _COMPLETION_FIELDS:
                    value = logprobs.get(key)
                    into.setdefault(key, []).extend(
                        value if isinstance(value, list) else [None] * count)
            elif isinstance(logprobs.get("content"), list):
                into = out.setdefault("logprobs", {"content": []})
                into.setdefault("content", []).extend(logprobs["content"])
    return {"choices": [assembled[i] for i in sorted(assembled)]}


_COMPLETION_FIELDS = ("tokens", "token_logprobs", "top_logprobs", "text_offset")


def _add_text(out: dict[str, Any], choice: dict[str, Any]) -> None:
    delta = choice.get("delta")
    if isinstance(delta, dict):
        message = out.setdefault("message", {"role": "assistant", "content": ""})
        if isinstance(delta.get("content"), str):
            message["content"] += delta["content"]
    elif isinstance(choice.get("text"), str):
        out["text"] = out.get("text", "") + choice["text"]


def _alternatives(response: Any) -> list[list[tuple[Any, Any]]]:
    """Choice 0's alternatives per position as (token, logprob) pairs, from either shape."""
    found = choices(response)
    if not found:
        return []
    logprobs = completion_logprobs(found[0])
    if logprobs is not None:
        return [list(top.items()) if isinstance(top, dict) else []
                for top in logprobs.get("top_logprobs") or []]
    return [[(a.get("token"), a.get("logprob")) for a in entry.get("top_logprobs") or []
             if isinstance(a, dict)] for entry in chat_content(found[0]) or []]


def _alternatives_differ(plain: list[tuple[Any, Any]], streamed: list[tuple[Any, Any]],
                         tolerance: Tolerance) -> str | None:
    """Why two lists of one position's alternatives disagree, or None. A token listed by
    one side only is allowed where numerics may have moved it across the k-th place: its
    logprob within the per-token tolerance of the other side's last one."""
    a = {t: v for t, v in plain if readable(t) and is_number(v)}
    b = {t: v for t, v in streamed if readable(t) and is_number(v)}
    for token in a.keys() & b.keys():
        if abs(a[token] - b[token]) > tolerance.per_token:
            return f"alternative {token!r}: {b[token]:.4g} streamed, {a[token]:.4g} not"
    for mine, other, side in ((a, b, "non-streamed"), (b, a, "streamed")):
        floor = min(other.values(), default=None)
        for token in mine.keys() - other.keys():
            if floor is not None and mine[token] > floor + tolerance.per_token:
                return f"alternative {token!r} ({mine[token]:.4g}) only in the {side} list"
    return None


@checks(STR_001)
def check_stream_matches(request: dict[str, Any], events: list[Any], plain: Any,
                         tolerance: Tolerance = DEFAULT) -> list[Violation]:
    """``events``: the stream of ``request``; ``plain``: the body of the same request not
    streamed (bind it: ``core.bind(check_stream_matches, plain, tolerance)``)."""
    assembled = assemble_stream(events)
    streamed = (sampling.token_values(assembled) or [([], [])])[0]
    reference = sampling.token_values(plain)
    if not reference or not reference[0][0]:
        return nothing_to_judge("the non-streamed twin has no logprobs to compare with", STR_001)
    tokens_ref, values_ref = reference[0]
    tokens_s, values_s = streamed
    if tokens_ref and not tokens_s:
        return [Violation(STR_001, "the stream carried no logprobs although the same request "
                          "without stream has them", verdict=Verdict.IGNORED,
                          expected=len(tokens_ref), actual=0)]
    if tokens_s != tokens_ref:
        return [Violation(STR_001, "streamed tokens differ from non-streamed tokens",
                          expected=tokens_ref, actual=tokens_s)]
    for p, (a, b) in enumerate(zip(values_ref, values_s, strict=False)):
        if is_number(a) != is_number(b):
            return [Violation(STR_001, "a streamed logprob is missing or not a number",
                              location=f"token {p}", expected=a, actual=b)]
    drift = Drift.between(values_ref, values_s)
    for p, _ in drift.over(tolerance)[:1]:
        return [Violation(STR_001, "a streamed logprob differs from the non-streamed one",
                          location=f"token {p} ({tokens_ref[p]!r})", expected=values_ref[p],
                          actual=values_s[p])]
    if drift.systematic(tolerance):
        return [Violation(STR_001, f"streamed logprobs differ systematically ({drift.summary()})",
                          expected=tolerance.describe(), actual=round(drift.median, 6))]
    plain_tops, streamed_tops = _alternatives(plain), _alternatives(assembled)
    for p, (a, b) in enumerate(zip(plain_tops, streamed_tops, strict=False)):
        why = _alternatives_differ(a, b, tolerance)
        if why:
            return [Violation(STR_001, f"streamed alternatives differ from non-streamed: {why}",
                              location=f"token {p}", expected=dict(a),
                              actual=dict(b))]
    return []


STR_002 = invariant(
    "STR-002", Level.MUST,
    "every stream chunk matches the chunk schema and the stream ends with data: [DONE]",
    "OpenAI reference (server-sent events); clients stop reading at [DONE]",
)


@checks(STR_002, when=asked.streamed)
def check_stream_chunks(request: dict[str, Any], events: list[Any]) -> list[Violation]:
    """``events``: the stream's parsed ``data:`` payloads, ``[DONE]`` as a string."""
    from logprobe import schemas

    name = "chat.chunk" if "messages" in request else "completion.chunk"
    found = []
    for n, event in enumerate(events):
        if event == "[DONE]":
            continue
        for error in schemas.errors(name, event)[:2]:
            found.append(Violation(STR_002, f"chunk {n}: {error}"))
    if not events or events[-1] != "[DONE]":
        found.append(Violation(STR_002, f"the stream did not end with data: [DONE] "
                               f"({len(events)} events)"))
    return found


STR_003 = invariant(
    "STR-003", Level.MUST,
    "every streamed position holds together on its own, as a non-streamed one must: a "
    "finite logprob <= 0, equal to the chosen token's entry among that position's "
    "alternatives, and at temperature 0 the most likely of them",
    "OpenAI reference (chunks carry the same logprobs); sgl-project/sglang#5761 (0.0 and "
    "-3.4e38 for chosen tokens in chunks), sgl-project/sglang#39260 (a multi-token chunk's "
    "later tokens given the first token's alternatives)",
)
# The one-position rules of a plain response that a stream's positions must keep too.
_POSITION_RULES = {values.VAL_001.id, values.VAL_003.id, values.VAL_004.id, values.VAL_005.id,
                   sampling.SMP_001.id}


@checks(STR_003, when=asked.streamed_logprobs)
def check_stream_positions(request: dict[str, Any], events: list[Any]) -> list[Violation]:
    """The stream assembled, judged position by position by the plain response's checks
    (their MUST rules of one position); needs no non-streamed twin, so generated streams
    are judged too."""
    assembled = assemble_stream(events)
    if not any(v for _, v in sampling.token_values(assembled) if any(is_number(x) for x in v)):
        return nothing_to_judge("the stream carried no logprobs (STR-001 compares it with the "
                                "same request not streamed)", STR_003)
    plain = {k: v for k, v in request.items() if k != "stream"}
    found = (values.check_logprob_values(plain, assembled)
             + values.check_alternatives(plain, assembled)
             + sampling.check_greedy_argmax(plain, assembled))
    return [Violation(STR_003, f"streamed, {v.id}: {v.message}", location=v.location,
                      expected=v.expected, actual=v.actual)
            for v in found if v.verdict is not Verdict.NA and v.id in _POSITION_RULES]
