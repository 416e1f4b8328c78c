"""SHAPE: the JSON shape of logprobs, checked against the schemas in ``schemas/``.

The lenient schema is what lm-eval and the MUST checks rely on; the strict
one adds the fields the OpenAI reference requires and is reported as SHOULD.
"""

from __future__ import annotations

from typing import Any

from logprobe import schemas
from logprobe.invariants import asked
from logprobe.invariants.core import Level, Verdict, Violation, checks, invariant
from logprobe.invariants.readers import asks_chat_logprobs, choices, completions_k

SRC_OPENAPI = "openai-openapi openapi.yaml (CreateCompletionResponse, CreateChatCompletionResponse)"

SHAPE_001 = invariant(
    "SHAPE-001", Level.MUST,
    "with logprobs not asked for, choices[].logprobs is null or absent",
    SRC_OPENAPI,
)
SHAPE_002 = invariant(
    "SHAPE-002", Level.MUST,
    "completions logprobs has tokens, token_logprobs, top_logprobs, text_offset of equal length",
    SRC_OPENAPI + "; the chat shape here breaks lm-eval (EleutherAI/lm-evaluation-harness#4158)",
)
SHAPE_003 = invariant(
    "SHAPE-003", Level.MUST,
    "chat logprobs has content: [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]",
    SRC_OPENAPI,
)
SHAPE_004 = invariant(
    "SHAPE-004", Level.MUST,
    'an error is a 4xx with {"error": {"message": str, ...}}',
    "openai-openapi ErrorResponse",
)
SHAPE_005 = invariant(
    "SHAPE-005", Level.SHOULD,
    "responses carry every field the OpenAI reference requires (strict schema: refusal, usage, …)",
    SRC_OPENAPI,
)
SHAPE_006 = invariant(
    "SHAPE-006", Level.SHOULD,
    "an error object has type, param and code (code a string or null)",
    "openai-openapi Error; vLLM sends an int code",
)


def _schema_violations(inv, name: str, document: Any, verdict=Verdict.FAIL) -> list[Violation]:
    return [
        Violation(inv, f"schema {name}: {err}", verdict=verdict)
        for err in schemas.errors(name, document)
    ]


@checks(SHAPE_001, when=asked.no_logprobs)
def check_no_logprobs_unasked(request: dict[str, Any], response: Any) -> list[Violation]:
    found = []
    for choice in choices(response):
        if choice.get("logprobs") is not None:
            found.append(Violation(
                SHAPE_001, "logprobs returned although the request did not ask for them",
                location=f"choices[{choice.get('index')}].logprobs",
                expected=None, actual=choice.get("logprobs"),
            ))
    return found


@checks(SHAPE_002, SHAPE_005, when=asked.completions_body)
def check_completions_shape(request: dict[str, Any], response: Any) -> list[Violation]:
    found = _schema_violations(SHAPE_002, "completion.response", response)
    found += _schema_violations(SHAPE_005, "completion.response.strict", response)
    asked = completions_k(request) is not None
    for choice in choices(response):
        where = f"choices[{choice.get('index')}].logprobs"
        logprobs = choice.get("logprobs", "<absent>")
        if not asked:
            continue
        if logprobs is None or logprobs == "<absent>":
            found.append(Violation(
                SHAPE_002,
                "logprobs were asked for but the choice has "
                + ("logprobs: null" if logprobs is None else "no logprobs key")
                + " (lm-eval raises "
                + ("TypeError: 'NoneType' object is not subscriptable)" if logprobs is None
                   else "KeyError: 'logprobs')"),
                location=where, verdict=Verdict.IGNORED,
            ))
            continue
        if not isinstance(logprobs, dict):
            continue  # the schema errors above say what it is
        if "content" in logprobs and "token_logprobs" not in logprobs:
            found.append(Violation(
                SHAPE_002,
                "completions returned the chat logprobs shape {content: [...]}; "
                "lm-eval raises KeyError: 'token_logprobs'",
                location=where,
            ))
            continue
        lengths = {
            key: len(logprobs[key])
            for key in ("tokens", "token_logprobs", "top_logprobs", "text_offset")
            if isinstance(logprobs.get(key), list)
        }
        if len(set(lengths.values())) > 1:
            found.append(Violation(
                SHAPE_002, "the four logprobs lists differ in length",
                location=where, expected="equal lengths", actual=lengths,
            ))
    return found


@checks(SHAPE_003, SHAPE_005, when=asked.chat_body)
def check_chat_shape(request: dict[str, Any], response: Any) -> list[Violation]:
    found = _schema_violations(SHAPE_003, "chat.response", response)
    found += _schema_violations(SHAPE_005, "chat.response.strict", response)
    if not asks_chat_logprobs(request):
        return found
    for choice in choices(response):
        where = f"choices[{choice.get('index')}].logprobs"
        logprobs = choice.get("logprobs", "<absent>")
        if logprobs is None or logprobs == "<absent>":
            found.append(Violation(
                SHAPE_003, "logprobs: true was asked but the choice has "
                + ("logprobs: null" if logprobs is None else "no logprobs key"),
                location=where, verdict=Verdict.IGNORED,
            ))
        elif isinstance(logprobs, dict) and "token_logprobs" in logprobs:
            found.append(Violation(
                SHAPE_003, "chat returned the completions logprobs shape", location=where,
            ))
        elif isinstance(logprobs, dict) and logprobs.get("content") is None:
            found.append(Violation(
                SHAPE_003, "logprobs.content is null although tokens were generated",
                location=where + ".content", verdict=Verdict.IGNORED,
            ))
    return found


@checks(SHAPE_004, SHAPE_006)
def check_error_object(status: int | None, response: Any) -> list[Violation]:
    """Judge a response that should be a client error (status and parsed body)."""
    found = []
    if status is None or not 400 <= status < 500:
        found.append(Violation(
            SHAPE_004, "an invalid request must get a 4xx", expected="4xx", actual=status,
        ))
    found += _schema_violations(SHAPE_004, "error", response)
    if not found:
        found += _schema_violations(SHAPE_006, "error.strict", response)
    return found
