"""ORACLE: the server's logprobs against the true values of the model it serves.

Self-consistency cannot see a softmax that is wrong everywhere in the same way, logprobs
taken after a temperature, or another model behind the name: every response agrees with
every other. A reference computation can. When the served model is available locally
(the embedded model always; ``--reference-model`` a hub id or folder), the suite scores
the same token ids with transformers in float32 and compares each prompt token's
logprob (echo) with the reference's log-softmax.

Tolerance, measured (bench/reference_numerics.py, bench/results/): the embedded model in
bfloat16, and through llama.cpp on its Q4_1 GGUF (activations quantised), against
float32 gives a median |difference| of 0.021 nats per token (p99 0.19 to 0.24, max 0.35);
float16 0.002. Defects: logprobs after temperature 0.7 give a median of 0.24, values
one position off 10.5. So the median must stay within 0.1 nats (five times the bf16 and
quantised figure, less than half the temperature defect), over at least 8 tokens; each
token's difference is reported (ORACLE-002), never judged alone.
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
from logprobe.tolerance import Drift

SRC = ("bench/results/reference-numerics-2026-11-27-cpu.json (bf16 and Q4_1 median 0.021, "
       "temperature-0.7 defect 0.24)")
ORACLE_MEDIAN = 0.1
ORACLE_MIN_TOKENS = 8

ORACLE_001 = invariant(
    "ORACLE-001", Level.MUST,
    f"prompt logprobs (echo, and prompt_logprobs where the server offers them) agree with "
    f"the served model's float32 log-softmax, computed "
    f"locally, in the median within {ORACLE_MEDIAN} nats (a bf16 or quantised server "
    "stays near 0.02)",
    SRC,
)
ORACLE_002 = invariant(
    "ORACLE-002", Level.INFO,
    "the measured deviation from the reference model: max, p99 and median per token",
    SRC,
)


@checks(ORACLE_001, ORACLE_002)
def check_against_reference(server: Sequence[Any], reference: Sequence[Any],
                            median: float = ORACLE_MEDIAN) -> list[Violation]:
    """``server`` and ``reference``: the logprobs of the same prompt tokens, in order
    (``None`` where the server has none, as at index 0 of an echo)."""
    return deviation(server, reference, ORACLE_001, median)


def deviation(server: Sequence[Any], reference: Sequence[Any], must: Invariant,
              median: float = ORACLE_MEDIAN) -> list[Violation]:
    """The deviation of one set of logprobs from the reference's for the same tokens
    (ORACLE-002), and ``must`` violated when its median is over ``median``: the rule of
    ORACLE-001, for whichever surface gave the values."""
    drift = Drift.between(reference, server)
    if not drift.n:
        return nothing_to_judge("no token had a logprob from both", must, ORACLE_002)
    found = [Violation(ORACLE_002, f"deviation from the reference model over {drift.summary()}",
                       actual=round(drift.max, 6))]
    if drift.n < ORACLE_MIN_TOKENS:
        return found + nothing_to_judge(
            f"{drift.n} tokens compared, fewer than {ORACLE_MIN_TOKENS}", must)
    if drift.median > median:
        worst = max(range(drift.n), key=lambda i: drift.deltas[i])
        found.append(Violation(
            must, f"the logprobs differ from the reference model's in the median "
            f"({drift.summary()}); the largest at token {drift.positions[worst]}",
            expected=f"median <= {median}", actual=round(drift.median, 6)))
    return found
