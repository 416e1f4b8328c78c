"""ERR: invalid parameters get a clean 4xx, and the server survives them."""

from __future__ import annotations

from typing import Any

from logprobe.invariants.core import Level, Violation, checks, invariant
from logprobe.invariants.runlevel import RunJudgement, RunView, run_check

ERR_001 = invariant(
    "ERR-001", Level.MUST,
    'chat top_logprobs of 21, -1, 1.5 or "5" gives a 4xx error object',
    "OpenAI reference: top_logprobs is an integer 0..20",
)
ERR_002 = invariant(
    "ERR-002", Level.MUST,
    "top_logprobs > 0 without logprobs: true gives a 4xx",
    "OpenAI reference: logprobs must be true if top_logprobs is used",
)
ERR_003 = invariant(
    "ERR-003", Level.MUST,
    "completions logprobs negative or above the server's limit gives a 4xx",
    "OpenAI limit 5, vLLM --max-logprobs (20 by default): parametrised with --logprobs-limit",
)
ERR_004 = invariant(
    "ERR-004", Level.MUST,
    "a logprobs or echo request gets a 200 or a clean 4xx, never a 5xx or a broken body",
    "lm-eval needs either a usable answer or an error it can report",
)
ERR_005 = invariant(
    "ERR-005", Level.MUST,
    "after a rejected request, a plain request still gets a 200",
    "a server must survive bad input",
)


ERR_006 = invariant(
    "ERR-006", Level.SHOULD,
    "every attempt gets a complete answer: failures a retry hid (a 429, a 503, a dropped "
    "connection, a body cut off) are reported",
    "lm-eval's API models retry failed requests themselves (lm_eval/models/api_models.py, "
    "max_retries), so a failure a retry fixes does not break an evaluation; it is still the "
    "server's, and a gate must not hide it",
)


ERR_007 = invariant(
    "ERR-007", Level.INFO,
    "limits the server states: legal requests it refuses with a clean 4xx (a logprobs cap, "
    "n > 1 at temperature 0, max_tokens 0), each with its request",
    "a clean refusal is a limitation, not a defect; a gate should know it (and a 5xx on the "
    "same request stays ERR-004)",
)


@checks(ERR_007)
def describe_refusal(curl: str, message: str) -> list[Violation]:
    return [Violation(ERR_007, f"a legal request refused: {message}", actual=curl)]


@checks(ERR_006)
def check_retried(history: list[str]) -> list[Violation]:
    """The failed attempts before the one that was judged (the client's retry history)."""
    if not history:
        return []
    return [Violation(ERR_006, f"{len(history)} failed attempt(s) before this answer: "
                      + "; ".join(history[:3]))]


@checks()
def check_rejected(inv: Any, status: int | None, response: Any) -> list[Violation]:
    """An invalid request must be refused with a 4xx (its error shape is SHAPE-004's)."""
    if status is not None and 400 <= status < 500:
        return []
    if status == 200:
        return [Violation(inv, "an invalid request was accepted with a 200",
                          expected="4xx", actual=status)]
    return [Violation(inv, "an invalid request must get a 4xx", expected="4xx", actual=status)]


@checks(ERR_005)
def check_still_serving(status: int | None) -> list[Violation]:
    if status == 200:
        return []
    return [Violation(ERR_005, "the server did not answer a plain request after a rejected one",
                      expected=200, actual=status)]


LIMITS_NODEID = "logprobe::run::limits"


@run_check
def judge_run_limits(run: RunView) -> RunJudgement | None:
    """ERR-007 for the run: the logprobs limit the server stated, in its own words."""
    cap, words = run.backend.get("logprobs_cap"), run.backend.get("logprobs_cap_evidence")
    if cap is None:
        return None
    return RunJudgement(LIMITS_NODEID, [ERR_007.id], Level.INFO, [Violation(
        ERR_007, f"the server serves at most {cap} logprobs, in its own words: {words}; every "
        "test and generated request kept to it")])
