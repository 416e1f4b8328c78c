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
split-K) the way prefill and decode differ. Measured on an NVIDIA H200 with vLLM 0.26.0 in
bf16 (CUDA graphs, prefix caching, chunked prefill; ../shared/gpu-runs/): every one of these
comparisons, in five runs, moved by exactly 0 nats (sent again, after a shared prefix, in a
list, among 7 concurrent requests, alone after a batch, each n > 1 choice against its
echo), and the CPU build moves by 0 or below 5e-6. Where kernels are not batch-invariant the
drift is real but sparse: vLLM ships a batch-invariant mode and tests it for bitwise equality
across batch sizes (docs/features/batch_invariance.md, tests/v1/determinism/), because
without it a few logits of a few positions differ in their last bits, and Thinking Machines'
"Defeating Nondeterminism in LLM Inference" (2025) traces the same: identical greedy
completions for the first hundred tokens, then a divergence at one close call. Sparse noise
leaves a comparison's median at 0, as prefill/decode noise does (logprobe/tolerance.py). A
stale prefix-cache row or batch-dependent numerics beyond noise (vllm-project/vllm#42019,
#11778) moves every token of the prompt. Hence, per comparison: a token that moves by more
than the per-token bound (0.5 nats) is a MUST failure (CONS-001, CONS-003), and so is a
comparison of at least 24 tokens whose every token moved together, three quarters of them
by more than the median bound (0.01 nats: CONS-004), which a uniform 0.1-0.3 nat shift does
while every token stays under 0.5 and sparse noise does not (``dense`` says why a quartile
and 24 tokens). CONS-002 reports each comparison's drift, CONS-005 the run's pooled drift.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from logprobe.invariants.core import (
    Invariant,
    Level,
    Violation,
    checks,
    invariant,
    nothing_to_judge,
)
from logprobe.invariants.runlevel import RunJudgement, RunView, drift_data, run_check
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


CONS_004 = invariant(
    "CONS-004", Level.MUST,
    "over a comparison of at least 24 tokens (the same prompt sent two ways, or a choice "
    "against its echo), the tokens do not move together: fewer than three quarters of them "
    "differ by more than the median tolerance (0.01 nats by default)",
    "measured: every such comparison 0 nats on an H200 in bf16 and below 5e-6 on the CPU "
    "(../shared/gpu-runs/); batch noise is sparse (vLLM docs/features/batch_invariance.md, "
    "tests/v1/determinism/; Thinking Machines, Defeating Nondeterminism in LLM Inference); "
    "vllm-project/vllm#42019 (stale prefix-cache rows), #11778 (batch-dependent numerics)",
)
CONS_005 = invariant(
    "CONS-005", Level.INFO,
    "the run's pooled consistency drift over every token the CONS comparisons covered: max, "
    "p99 and median",
    "as NUM-002 reports the echo-versus-generation drift",
)
RUN_NODEID = "logprobe::run::consistency"
MEASURE = "consistency"  # the key of a test's data under which its compared values are kept


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
    if dense(drift, tolerance):
        found.append(Violation(
            CONS_004, f"{how}: the same tokens moved together: three quarters of {drift.n} tokens "
            f"by more than {tolerance.median:g} nats, median {drift.median:.3g} (a stale cache "
            "row or batch-dependent numerics; batch noise is sparse)",
            expected=f"lower quartile <= {tolerance.median:g}",
            actual=round(drift.quantile(0.25), 6)))
    found.append(Violation(CONS_002, f"{how}: {drift.summary()}", actual=round(drift.max, 6)))
    return found


# The fewest tokens a comparison needs before CONS-004 judges it. Sparse noise on both
# requests, each token moved beyond the median bound with probability 0.27 (bf16's or fp16's
# measured prefill/decode rate, 13-15% of tokens, met independently by each request: far more
# than the 0 measured for these comparisons on an H200), moves three quarters of 24 tokens
# about once in 10^6 comparisons; of 12 tokens once in 3,000, of 4 once in 20
# (tests/test_tolerance.py simulates it). A uniform shift moves all of them.
MIN_TOKENS = 24


def dense(drift: Drift, tolerance: Tolerance) -> bool:
    """The comparison's tokens moved together: at least three quarters of them by more than
    the median bound, over at least ``MIN_TOKENS`` tokens. A uniform shift of 0.1-0.3 nats
    moves every token; sparse noise moves a few (a quartile, not the median, keeps noise that
    moves one token in four on either side from reaching it)."""
    return drift.n >= MIN_TOKENS and drift.quantile(0.25) > tolerance.median


def pooled(rows: Iterable[dict[str, Any]]) -> Drift:
    """Every (first, again) pair the run's tests kept under ``data.consistency``."""
    drifts = []
    for row in rows:
        for pair in (row.get("data") or {}).get(MEASURE) or []:
            drifts.append(Drift.between(pair.get("first") or [], pair.get("again") or []))
    return Drift.pooled(drifts)


@checks(CONS_005)
def describe_run_drift(drift: Drift) -> list[Violation]:
    if not drift.n:
        return nothing_to_judge("no test compared a prompt scored twice", CONS_005)
    return [Violation(CONS_005, f"consistency drift over {drift.summary()}")]


@checks(CONS_001, CONS_002, CONS_004)
def check_same_prompt(first: Sequence[Any], again: Sequence[Any], how: str,
                      tolerance: Tolerance = DEFAULT) -> list[Violation]:
    """``first`` and ``again``: the token_logprobs of one prompt's echo, sent two ways;
    ``how`` names the second way for the report."""
    return _compare(CONS_001, first, again, how, tolerance)


@checks(CONS_003, CONS_002, CONS_004)
def check_choice_scores_its_tokens(choice: Sequence[Any], forced: Sequence[Any], index: int,
                                   tolerance: Tolerance = DEFAULT) -> list[Violation]:
    """``choice``: the token_logprobs of choice ``index`` of an n > 1 request; ``forced``:
    the same tokens' logprobs from an echo of the prompt followed by them."""
    return _compare(CONS_003, choice, forced, f"choice {index} against its tokens echoed "
                    "after the prompt", tolerance)


@run_check
def judge_run_consistency(run: RunView) -> RunJudgement | None:
    """Every token the CONS comparisons covered, pooled: the run's consistency drift
    (CONS-005, reported as NUM-002 reports echo against generation)."""
    drift = pooled(run.rows)
    if not drift.n:
        return None
    return RunJudgement(RUN_NODEID, [CONS_005.id], Level.INFO, describe_run_drift(drift),
                        drift_data(drift))
