"""LMEVAL: judge a server the way lm-evaluation-harness reads it.

lm-eval's ``local-completions`` scores a multiple-choice answer with one
``/v1/completions`` request (echo, max_tokens 1, logprobs 1, temperature 0)
and reads ``sum(token_logprobs[ctxlen:-1])`` plus a greedy test against
``max(top_logprobs[i].values())``. :func:`lmeval_parse_logprobs` is that code
(lm_eval/models/openai_completions.py, ``LocalCompletionsAPI.parse_logprobs``,
0.4.13), kept verbatim in behaviour so the suite can predict exactly what
lm-eval would compute, or raise, on a given response.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

from logprobe.invariants.core import Level, Violation, checks, invariant, is_number
from logprobe.invariants.readers import choices, completion_logprobs, prompt_count
from logprobe.tolerance import DEFAULT, Drift, Tolerance

SRC = "lm-evaluation-harness lm_eval/models/openai_completions.py (parse_logprobs, _create_payload)"

LMEVAL_001 = invariant(
    "LMEVAL-001", Level.MUST,
    "lm-eval's loglikelihood request returns, per prompt, token_logprobs and top_logprobs of "
    "length prompt_tokens + 1, null only at index 0",
    SRC,
)
LMEVAL_002 = invariant(
    "LMEVAL-002", Level.MUST,
    "the continuation logprob lm-eval computes from echo equals the teacher-forced logprobs of "
    "generating the same tokens from the context (per token within the logprob tolerance: "
    "0.5 nats by default, three times the bf16 prefill/decode drift measured on a GPU)",
    SRC + "; ggml-org/llama.cpp#27174 (shifted echo logprobs)",
)
LMEVAL_003 = invariant(
    "LMEVAL-003", Level.MUST,
    "lm-eval's greedy test agrees with greedy decoding from the context",
    SRC,
)


# The end-to-end run (logprobe/e2e.py, suites/test_e2e.py): lm-eval itself against the server.
E2E_SRC = "lm-evaluation-harness 0.4.13 simple_evaluate with local-completions"
LMEVAL_004 = invariant(
    "LMEVAL-004", Level.MUST,
    "lm-eval's MMLU run through local-completions completes without an exception",
    E2E_SRC + "; InternLM/lmdeploy (logprobs: null -> TypeError)",
)
LMEVAL_005 = invariant(
    "LMEVAL-005", Level.MUST,
    "lm-eval's per-question answer and per-choice loglikelihoods (within the logprob tolerance) "
    "equal the suite's own scoring from next-token alternatives",
    E2E_SRC + "; ggml-org/llama.cpp#27174 (silent chance-level scores)",
)
LMEVAL_006 = invariant(
    "LMEVAL-006", Level.INFO, "lm-eval's MMLU accuracy, with its standard error", SRC,
)
LMEVAL_007 = invariant(
    "LMEVAL-007", Level.SHOULD,
    "the embedded model's MMLU accuracy lies within 3 standard errors of the stored expectation",
    "fixtures/mmlu/expected.json (measured; the command is stored with it)",
)
LMEVAL_008 = invariant(
    "LMEVAL-008", Level.MUST,
    "lm-eval's generative MMLU through local-chat-completions completes and every answer is text",
    "lm-evaluation-harness local-chat-completions (chat endpoints serve generate_until tasks)",
)


def lmeval_request(model: str, prompt: Any, seed: int = 1234) -> dict[str, Any]:
    """The exact payload lm-eval 0.4.4+ sends for loglikelihood."""
    return {
        "model": model,
        "prompt": prompt,
        "temperature": 0,
        "max_tokens": 1,
        "logprobs": 1,
        "seed": seed,
        "echo": True,
    }


def lmeval_parse_logprobs(outputs: Any, ctxlens: list[int]) -> list[tuple[float, bool]]:
    """lm-eval's ``parse_logprobs``: the same slicing, summing and greedy test, and the same errors."""
    res = []
    if not isinstance(outputs, list):
        outputs = [outputs]
    for out in outputs:
        for choice, ctxlen in zip(sorted(out["choices"], key=itemgetter("index")), ctxlens,
                                  strict=False):
            assert ctxlen > 0, "Context length must be greater than 0"
            logprobs = sum(choice["logprobs"]["token_logprobs"][ctxlen:-1])
            tokens_logprobs = choice["logprobs"]["token_logprobs"][ctxlen:-1]
            top_logprobs = choice["logprobs"]["top_logprobs"][ctxlen:-1]
            is_greedy = True
            for tok, top in zip(tokens_logprobs, top_logprobs, strict=False):
                if tok != max(top.values()):
                    is_greedy = False
                    break
            res.append((logprobs, is_greedy))
    return res


def predict_lmeval_crash(response: Any, ctxlens: list[int], status: int | None = None) -> str | None:
    """The exception lm-eval would raise on ``response``, as ``Type: message``, or None.

    lm-eval reads the HTTP status before the body: ``amodel_call`` calls aiohttp's
    ``raise_for_status()`` on an answer that is not ok (lm_eval/models/api_models.py, 0.4.13),
    so a 4xx or 5xx raises ``ClientResponseError`` whatever its body says."""
    if status is not None and not 200 <= status < 300:
        import http

        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        return f"ClientResponseError: {status}, message={reason!r}"
    try:
        lmeval_parse_logprobs(response, ctxlens)
    except Exception as exc:  # the point is to see whatever lm-eval would see
        return f"{type(exc).__name__}: {exc}"
    return None


@checks(LMEVAL_001)
def check_lmeval_response(
    request: dict[str, Any], response: Any, prompt_lengths: list[int] | None,
    status: int | None = None,
) -> list[Violation]:
    """Judge one loglikelihood exchange; ``prompt_lengths`` are tokens per prompt when known,
    ``status`` the HTTP status when the caller has not already judged it (lm-eval raises on a
    status that is not ok before it reads the body)."""
    found = []
    expected_choices = prompt_count(request)
    ctxlens = [1] * expected_choices
    crash = predict_lmeval_crash(response, ctxlens, status)
    if status is not None and crash is not None and crash.startswith("ClientResponseError"):
        return [Violation(LMEVAL_001, f"lm-eval would raise {crash}")]
    if crash is not None:
        found.append(Violation(LMEVAL_001, f"lm-eval would raise {crash}"))
    cs = choices(response)
    if len(cs) != expected_choices:
        found.append(Violation(LMEVAL_001, "one choice per prompt expected",
                               expected=expected_choices, actual=len(cs)))
    for n, choice in enumerate(cs):
        where = f"choices[{choice.get('index')}].logprobs"
        logprobs = completion_logprobs(choice)
        if logprobs is None:
            if crash is None:
                found.append(Violation(LMEVAL_001, "no completions-shaped logprobs", location=where))
            continue
        values = logprobs["token_logprobs"]
        tops = logprobs.get("top_logprobs")
        if not isinstance(tops, list):
            found.append(Violation(LMEVAL_001, "top_logprobs is not a list", location=where))
            continue
        if prompt_lengths is not None and n < len(prompt_lengths):
            want = prompt_lengths[n] + 1
            for key, seq in (("token_logprobs", values), ("top_logprobs", tops)):
                if len(seq) != want:
                    found.append(Violation(
                        LMEVAL_001,
                        f"{key} has {len(seq)} entries for {prompt_lengths[n]} prompt tokens; "
                        "lm-eval's [ctxlen:-1] then drops or misplaces continuation tokens",
                        location=f"{where}.{key}", expected=want, actual=len(seq),
                    ))
        bad = [p for p, v in enumerate(values) if (p == 0) == (v is not None) or
               (p > 0 and not is_number(v))]
        bad += [p for p, t in enumerate(tops) if (p == 0) == (t is not None) or
                (p > 0 and not isinstance(t, dict))]
        if bad:
            found.append(Violation(LMEVAL_001, "null must be at index 0 and only there",
                                   location=where, actual=sorted(set(bad))[:10]))
    return found


@checks(LMEVAL_001, LMEVAL_002, LMEVAL_003)
def check_continuation(
    echo_response: Any,
    ctxlen: int,
    teacher_logprobs: list[float],
    expect_greedy: bool,
    continuation_tokens: list[str] | None = None,
    tolerance: Tolerance = DEFAULT,
) -> list[Violation]:
    """Compare lm-eval's reading of an echo response with teacher-forced generation.

    ``echo_response`` answered lm-eval's request for context + continuation;
    ``ctxlen`` is the number of context tokens; ``teacher_logprobs[i]`` is the
    logprob of continuation token i when generated from the context and the
    continuation tokens before it. ``expect_greedy`` is what greedy decoding said.

    Per token, the echo may differ from the teacher by ``tolerance.per_token`` (prefill and
    decode round differently on GPUs); a systematic offset too small for that bound is
    judged over the whole run's tokens (NUM-001). A failure says whether the echo matches
    the teacher one position off: the shift seen in llama-cpp-python.
    """
    crash = predict_lmeval_crash(echo_response, [ctxlen])
    if crash is not None:
        # A response lm-eval cannot read at all is LMEVAL-001's failure, whatever its numbers.
        return [Violation(LMEVAL_001, f"lm-eval would raise {crash} reading this continuation")]
    (total, is_greedy), = lmeval_parse_logprobs(echo_response, [ctxlen])
    choice = choices(echo_response)[0]
    logprobs = completion_logprobs(choice) or {}
    all_values = logprobs.get("token_logprobs") or []
    per_token = all_values[ctxlen:-1]
    echoed = (logprobs.get("tokens") or [])[ctxlen:-1]
    found = []
    if len(per_token) != len(teacher_logprobs):
        found.append(Violation(
            LMEVAL_002,
            f"lm-eval's slice [ctxlen:-1] holds {len(per_token)} logprobs for a "
            f"{len(teacher_logprobs)}-token continuation",
            expected=teacher_logprobs, actual=per_token,
        ))
    else:
        found += _per_token(per_token, ctxlen, teacher_logprobs, continuation_tokens, tolerance)
        if found:
            shift = _shift_explains(all_values, ctxlen, teacher_logprobs, tolerance)
            found.append(Violation(
                LMEVAL_002, "lm-eval's continuation score differs from the teacher-forced sum"
                + (f"; the echo matches the teacher {shift}" if shift else ""),
                expected=round(sum(teacher_logprobs), 6), actual=round(total, 6),
            ))
    if continuation_tokens is not None and echoed and echoed != continuation_tokens:
        found.append(Violation(LMEVAL_002, "the echoed continuation tokens are not the ones scored",
                               expected=continuation_tokens, actual=echoed))
    if is_greedy != expect_greedy:
        found.append(Violation(
            LMEVAL_003, "lm-eval's greedy test disagrees with greedy decoding",
            expected=expect_greedy, actual=is_greedy,
        ))
    return found


def _per_token(per_token: list[Any], ctxlen: int, teacher: list[float],
               continuation_tokens: list[str] | None, tolerance: Tolerance) -> list[Violation]:
    """LMEVAL-002 token by token, then over the continuation: a missing value, a token
    beyond the per-token bound, a systematic offset."""
    found = []
    drift = Drift.between(teacher, per_token)
    missing = [i for i, got in enumerate(per_token) if not is_number(got)]
    for i in missing:
        found.append(Violation(LMEVAL_002, "a continuation token has no echo logprob",
                               location=f"token_logprobs[{ctxlen + i}]", actual=per_token[i]))
    for i, delta in drift.over(tolerance):
        name = continuation_tokens[i] if continuation_tokens else i
        found.append(Violation(
            LMEVAL_002,
            f"continuation token {name!r}: the echo logprob differs from the teacher-forced "
            f"one by {delta:.3g} nats (more than {tolerance.per_token:g})",
            location=f"token_logprobs[{ctxlen + i}]", expected=teacher[i],
            actual=per_token[i],
        ))
    if drift.systematic(tolerance):
        found.append(Violation(
            LMEVAL_002, f"the continuation's echo logprobs differ systematically from the "
            f"teacher-forced ones ({drift.summary()})", expected=tolerance.describe(),
            actual=round(drift.median, 6)))
    return found


def _shift_explains(values: list[Any], ctxlen: int, teacher: list[float],
                    tolerance: Tolerance) -> str | None:
    """Whether the echo, read one position off, matches the teacher within tolerance."""
    for offset, words in ((-1, "one position earlier (each prompt token carries the next "
                                "token's score)"), (1, "one position later")):
        start = ctxlen + offset
        if start < 1 or start + len(teacher) > len(values):
            continue
        drift = Drift.between(teacher, values[start:start + len(teacher)])
        if drift.n == len(teacher) and not drift.over(tolerance) \
                and not drift.systematic(tolerance):
            return words
    return None
