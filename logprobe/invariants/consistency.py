"""CONS: the same prompt scored alike however it reaches the server.

One exchange cannot show these: the prompt's logprobs must not depend on what was sent
before it (a stale or uninitialised prefix-cache row: vllm-project/vllm#3251, #8268), on
being sent inside a list (vllm-project/vllm#11778; lm-eval sends lists), or on other
requests in flight. A reordered, copied or stale row moves tokens by nats. Each choice
of an ``n > 1`` request must carry the logprobs of its own tokens: scored again by an echo
of the prompt followed by that choice's tokens, they must agree (sgl-project/sglang#1176:
choices given another index's values). That comparison is made at temperature 1, where a
server's raw and processed logprob modes coincide (SMP-003), and is decode against
prefill, the drift the tolerance was measured on.

Level and tolerance: batch composition and concurrency change a GPU's kernels (tiling,
split-K) the way prefill and decode differ, and that drift was measured sparse and at
most 0.17 nats in bf16 (logprobe/tolerance.py); batch-versus-single drift itself has not
been measured on a GPU here. So a token that moves by more than the per-token tolerance
(0.5 nats, three times the largest measured drift) is a MUST failure, and the median,
which a defect in a dense form would move, is only reported (CONS-002, INFO) until
measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from logprobe.invariants.core import (
    Invariant,
    Level,
    Violation,
    checks,
    invariant,
    nothing_to_judge,
)
from logprobe.tolerance import DEFAULT, Drift, Tolerance

SRC = ("vllm-project/vllm#3251, #8268 (prefix cache), #11778 (batch vs single); "
       "sgl-project/sglang#1176 (n > 1)")

CONS_001 = invariant(
    "CONS-001", Level.MUST,
    "a prompt's echoed logprobs agree within the per-token tolerance when it is sent again, "
    "after a prompt sharing its prefix, inside a list, or among concurrent requests",
    SRC,
)
CONS_002 = invariant(
    "CONS-002", Level.INFO,
    "how far the same prompt's logprobs moved between the ways it was sent (median, max)",
    SRC + "; a GPU's batch-versus-single drift is not measured yet",
)


CONS_003 = invariant(
    "CONS-003", Level.MUST,
    "each choice of an n > 1 request at temperature 1 carries its own tokens' logprobs: an "
    "echo of the prompt followed by that choice's tokens scores them alike, per token within "
    "the tolerance",
    "sgl-project/sglang#1176 (choices' indices misassigned); OpenAI reference (logprobs "
    "per choice)",
)


def _compare(must: Invariant, first: Sequence[Any], again: Sequence[Any], how: str,
             tolerance: Tolerance) -> list[Violation]:
    if len(first) != len(again):
        return [Violation(must, f"{how}: another number of entries for the same tokens",
                          expected=len(first), actual=len(again))]
    drift = Drift.between(first, again)
    if not drift.n:
        return nothing_to_judge("no entry with a logprob both times", must, CONS_002)
    found = [Violation(must, f"{how}: token {p} moved by {d:.3g} nats",
                       location=f"token_logprobs[{p}]", expected=first[p], actual=again[p])
             for p, d in drift.over(tolerance)[:5]]
    found.append(Violation(CONS_002, f"{how}: {drift.summary()}", actual=round(drift.max, 6)))
    return found


@checks(CONS_001, CONS_002)
def check_same_prompt(first: Sequence[Any], again: Sequence[Any], how: str,
                      tolerance: Tolerance = DEFAULT) -> list[Violation]:
    """``first`` and ``again``: the token_logprobs of one prompt's echo, sent two ways;
    ``how`` names the second way for the report."""
    return _compare(CONS_001, first, again, how, tolerance)


@checks(CONS_003, CONS_002)
def check_choice_scores_its_tokens(choice: Sequence[Any], forced: Sequence[Any], index: int,
                                   tolerance: Tolerance = DEFAULT) -> list[Violation]:
    """``choice``: the token_logprobs of choice ``index`` of an n > 1 request; ``forced``:
    the same tokens' logprobs from an echo of the prompt followed by them."""
    return _compare(CONS_003, choice, forced, f"choice {index} against its tokens echoed "
                    "after the prompt", tolerance)
