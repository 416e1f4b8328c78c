"""NUM: numbers compared across the whole run: what no single comparison can tell from noise.

Each echo-versus-generation comparison (LMEVAL-002) covers a few tokens, judged per token
against a bound wide enough for GPU prefill/decode drift (see logprobe.tolerance). Noise
of that kind is sparse: most tokens agree exactly. A defect that moves every token a
little (an offset of 0.05 nats, values rounded to one decimal) stays inside the per-token
bound, so the run pools every compared token and judges their median.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from logprobe.invariants.core import Level, Verdict, Violation, checks, invariant, nothing_to_judge
from logprobe.invariants.runlevel import RunJudgement, RunView, drift_data, run_check
from logprobe.tolerance import DEFAULT, Drift, Tolerance

NUM_001 = invariant(
    "NUM-001", Level.MUST,
    "over every token the run compared, echo (prefill) and generated (decode) logprobs of the "
    "same token agree in the median within the tolerance (0.01 nats by default)",
    "measured GPU drift is sparse (bf16 median 0, fp16 0.002; ENVIRONMENT.md); rounding to one "
    "decimal gives a median of 0.025, an offset of 0.05 one of 0.05",
)
NUM_002 = invariant(
    "NUM-002", Level.INFO,
    "the measured echo-versus-generation drift of this server: max, p99 and median",
    "ENVIRONMENT.md (GPU numerics); reported in every run that compared tokens",
)
RUN_NODEID = "logprobe::run::echo-vs-generation"
MEASURE = "echo_vs_teacher"  # the key of a test's data under which its compared tokens are kept


def run_drift(rows: Iterable[dict[str, Any]]) -> Drift:
    """Every (teacher, echo) pair the run's tests recorded in ``data.echo_vs_teacher``."""
    drifts = []
    for row in rows:
        pair = (row.get("data") or {}).get(MEASURE)
        if pair:
            drifts.append(Drift.between(pair.get("teacher") or [], pair.get("echo") or []))
    return Drift.pooled(drifts)


@checks(NUM_001, NUM_002)
def check_run_drift(drift: Drift, tolerance: Tolerance = DEFAULT) -> list[Violation]:
    if not drift.n:
        return nothing_to_judge("no test compared echo with generation", NUM_001, NUM_002)
    found = [Violation(NUM_002, f"echo vs generation drift over {drift.summary()}")]
    if drift.n < tolerance.min_tokens:
        return found + nothing_to_judge(f"{drift.n} tokens are too few to tell an offset from "
                                        "noise", NUM_001)
    if drift.systematic(tolerance):
        found.append(Violation(
            NUM_001, f"echo and generated logprobs of the same tokens differ systematically: "
            f"median {drift.median:.3g} nats over {drift.n} tokens (an offset, rounding or a "
            "misalignment; GPU noise is sparse)", expected=f"median <= {tolerance.median:g}",
            actual=round(drift.median, 6)))
    return found


@run_check
def judge_run_drift(run: RunView) -> RunJudgement | None:
    """NUM-001/002 over every echo-versus-generation token the run's tests compared."""
    drift = run_drift(run.rows)
    if not drift.n:
        return None
    found = check_run_drift(drift, run.tolerance)
    unjudged = {v.id for v in found if v.verdict is Verdict.NA}
    return RunJudgement(RUN_NODEID, [i for i in (NUM_001.id, NUM_002.id) if i not in unjudged],
                        Level.MUST, found, drift_data(drift), expectable=True)
