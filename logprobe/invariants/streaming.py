"""STR: streamed logprobs, concatenated, equal the non-streamed ones."""

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
from logprobe.invariants.sampling import token_values
from logprobe.tolerance import DEFAULT, Drift, Tolerance

STR_001 = invariant(
    "STR-001", Level.MUST,
    "streamed logprobs concatenated equal the non-streamed logprobs of the same "
    "temperature-0 request (tokens, values within the logprob tolerance)",
    "OpenAI reference: stream chunks carry the same logprobs",
)


def assemble_stream(events: list[Any]) -> dict[str, Any]:
    """Rebuild a non-streamed-like response (choice 0) from SSE chunk payloads."""
    tokens: list[Any] = []
    values: list[Any] = []
    for event in events:
        if not isinstance(event, dict):
            continue
        for choice in event.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            logprobs = choice.get("logprobs")
            if not isinstance(logprobs, dict):
                continue
            if isinstance(logprobs.get("token_logprobs"), list):
                tokens += logprobs.get("tokens") or []
                values += logprobs["token_logprobs"]
            elif isinstance(logprobs.get("content"), list):
                for entry in logprobs["content"]:
                    if isinstance(entry, dict):
                        tokens.append(entry.get("token"))
                        values.append(entry.get("logprob"))
    return {"choices": [{"index": 0, "logprobs": {"tokens": tokens, "token_logprobs": values}}]}


@checks(STR_001)
def check_stream_matches(events: list[Any], plain: Any,
                         tolerance: Tolerance = DEFAULT) -> list[Violation]:
    streamed = token_values(assemble_stream(events))[0]
    reference = token_values(plain)
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
