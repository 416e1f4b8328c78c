"""DIFF: the same request to the server under test and to a reference endpoint.

``--reference-endpoint URL`` sends every greedy exchange of the run (temperature 0; a
seed does not make two implementations sample alike) to a second server too and compares
the two answers value by value: is a
gateway transparent, does a new release score like the old one, a GPU deployment like
the CPU reference, a quantised model like the full one. Differences are reported
(DIFF-001, SHOULD: what is "the same" depends on the pair of servers), each with both
responses and a curl for each; the run summary gives max and p99 per field (DIFF-002).

Two numbers differ when they are further apart than ``--reference-tolerance`` (1e-3 nats
by default): the same request answered twice by one server is not always the same
number. Measured on the embedded vLLM (float32, CPU) through a transparent proxy against
itself, greedy requests moved by up to 3.4e-05; a GPU in bf16 moves more between batch
compositions (not measured here), which the summary's max and p99 then show.
"""

from __future__ import annotations

import math
from typing import Any

from logprobe.invariants.core import Level, Violation, checks, invariant, is_number
from logprobe.invariants.runlevel import RunJudgement, RunView, run_check

MEASURE = "differential"  # the key of a test's data under which its per-field comparison is kept
RUN_NODEID = "logprobe::run::differential"
KEPT_DELTAS = 500  # per field and test, the largest; the summary needs no more
SRC = "--reference-endpoint: the two servers' answers to the same request"

DIFF_001 = invariant(
    "DIFF-001", Level.SHOULD,
    "a greedy request gets the same answer from the reference endpoint: the same status, "
    "text and tokens, and numbers within the reference tolerance (1e-3 nats by default)",
    SRC,
)
DIFF_002 = invariant(
    "DIFF-002", Level.INFO,
    "how far the two servers' answers differ, per field, over the run (max, p99)",
    SRC,
)

SAME = 1e-3
# Fields that name the response rather than answer the request.
IGNORED = frozenset({"id", "created", "system_fingerprint", "model", "service_tier"})


# (location, field, this value, the reference's, |difference|)
Leaf = tuple[str, str, Any, Any, float]


def compare(a: Any, b: Any, where: str = "") -> list[Leaf]:
    """Every leaf of two JSON bodies, walked together: (location, field, a, b, |a - b|)
    for numbers (inf when one side is not a number) and (…, 0 or inf) for other values."""
    out: list[Leaf] = []
    field = where.rsplit(".", 1)[-1].split("[", 1)[0] if where else ""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key in IGNORED:
                continue
            parent = field if field in ("top_logprobs",) else key
            for item in compare(a.get(key), b.get(key), f"{where}.{key}" if where else key):
                out.append(item if parent == key else (item[0], parent, *item[2:]))
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append((where, field, f"{len(a)} items", f"{len(b)} items", math.inf))
        for n, (x, y) in enumerate(zip(a, b, strict=False)):
            out += compare(x, y, f"{where}[{n}]")
    elif is_number(a) and is_number(b):
        out.append((where, field, a, b, abs(float(a) - float(b))))
    else:
        out.append((where, field, a, b, 0.0 if a == b else math.inf))
    return out


def field_deltas(leaves: list[Leaf]) -> dict[str, list[float]]:
    """Per field, every |difference| among ``compare``'s leaves (0 for equal values)."""
    fields: dict[str, list[float]] = {}
    for _, field, _, _, delta in leaves:
        fields.setdefault(field or "body", []).append(delta)
    return fields


@checks(DIFF_001)
def check_same_answer(status: int | None, body: Any, ref_status: int | None, ref_body: Any,
                      curls: tuple[str, str], tolerance: float = SAME,
                      leaves: list[Leaf] | None = None) -> list[Violation]:
    """One violation per exchange that differs, naming up to 8 differences and both curls.
    ``leaves``: ``compare(body, ref_body)`` when the caller walked the bodies already."""
    both = f"\n    this server: {curls[0]}\n    reference:   {curls[1]}"
    if status != ref_status:
        return [Violation(DIFF_001, f"HTTP {status} here, {ref_status} from the reference{both}",
                          expected=ref_status, actual=status)]
    leaves = compare(body, ref_body) if leaves is None else leaves
    differing = sorted((leaf for leaf in leaves if leaf[4] > tolerance),
                       key=lambda leaf: -leaf[4])
    if not differing:
        return []
    listed = "; ".join(f"{loc}: {x!r} vs {y!r}" for loc, _, x, y, _ in differing[:8])
    return [Violation(DIFF_001, f"{len(differing)} values differ from the reference's answer "
                      f"({listed}){both}", expected="the reference's answer",
                      actual=f"{len(differing)} differences")]


def against_reference(status: int | None, body: Any, ref_status: int | None, ref_body: Any,
                      curls: tuple[str, str], tolerance: float = SAME,
                      ) -> tuple[list[Violation], dict[str, dict[str, Any]]]:
    """DIFF-001 for one answer and the reference's answer to the same request, and per field
    what was compared (``{n, differ, deltas}``, plain JSON, for the run's DIFF-002)."""
    leaves = compare(body, ref_body)  # one walk for the check and the summary
    found = check_same_answer(status, body, ref_status, ref_body, curls, tolerance, leaves)
    if status != ref_status:
        return found, {"status": {"n": 1, "differ": 1, "deltas": []}}
    return found, {field: _kept(deltas, tolerance)
                   for field, deltas in field_deltas(leaves).items()}


def _kept(deltas: list[float], tolerance: float) -> dict[str, Any]:
    """n, how many differ, and the largest finite nonzero differences."""
    finite = sorted((d for d in deltas if math.isfinite(d) and d > 0), reverse=True)
    return {"n": len(deltas), "differ": sum(1 for d in deltas if d > tolerance),
            "deltas": [round(d, 9) for d in finite[:KEPT_DELTAS]]}


def summarise(fields: dict[str, dict[str, Any]]) -> list[Violation]:
    """DIFF-002: per field that differed at all (``{n, differ, deltas}``: the largest
    nonzero differences), how many values were compared, how many differ beyond the
    tolerance, and max and p99 of the differences; then how many fields were equal."""
    parts = []
    equal = [f for f, seen in fields.items() if not seen["deltas"] and not seen["differ"]]
    for field, seen in sorted(fields.items()):
        if field in equal:
            continue
        n, deltas = seen["n"], sorted(seen["deltas"], reverse=True)
        text = f"{field}: {n} values, {seen['differ']} differ"
        if deltas:
            rank = int(0.01 * n)  # the p99 of all n values, zeros included
            p99 = deltas[rank] if rank < len(deltas) else 0.0
            text += f", max {deltas[0]:.3g}, p99 {p99:.3g}"
        parts.append(text)
    parts.append(f"{len(equal)} other fields equal "
                 f"({sum(fields[f]['n'] for f in equal)} values)")
    return [Violation(DIFF_002, "against the reference endpoint: " + "; ".join(parts))]


def merge(into: dict[str, dict[str, Any]], more: dict[str, dict[str, Any]]) -> None:
    """Add one test's per-field comparison to the run's (or another test's)."""
    for name, seen in more.items():
        kept = into.setdefault(name, {"n": 0, "differ": 0, "deltas": []})
        kept["n"] += seen["n"]
        kept["differ"] += seen["differ"]
        kept["deltas"] = sorted(kept["deltas"] + seen["deltas"], reverse=True)[:KEPT_DELTAS]


@run_check
def judge_run_differential(run: RunView) -> RunJudgement | None:
    """With --reference-endpoint: the run's differences from the reference, per field."""
    fields: dict[str, dict[str, Any]] = {}
    for row in run.rows:
        merge(fields, (row.get("data") or {}).get(MEASURE) or {})
    if not fields:
        return None
    return RunJudgement(RUN_NODEID, [DIFF_002.id], Level.INFO, summarise(fields),
                        {MEASURE: fields})
