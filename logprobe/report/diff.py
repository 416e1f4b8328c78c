"""``logprobe diff OLD.json NEW.json``: what changed between two runs, and whether it regressed.

Compared per invariant (the matrix cells) and per test. A regression is a
cell or a test that passed before and fails now; one on a MUST invariant (or a
MUST-level test) makes the exit status 1, which is what a CI gate keys on.
Tests or invariants present in only one run are listed as new or removed,
never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from logprobe.invariants.core import FAILING, GOOD, Outcome
from logprobe.report.matrix import UNJUDGED, column, invariant_levels


@dataclass
class Change:
    kind: str  # "invariant" or "test"
    key: str
    old: str | None
    new: str | None
    must: bool
    tests: list[str] = field(default_factory=list)

    def line(self) -> str:
        level = "MUST " if self.must else ""
        where = f"  ({', '.join(self.tests[:3])})" if self.tests else ""
        return f"{level}{self.kind} {self.key}: {self.old or '-'} -> {self.new or '-'}{where}"


@dataclass
class RunDiff:
    regressions: list[Change] = field(default_factory=list)
    fixes: list[Change] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    new: list[Change] = field(default_factory=list)
    removed: list[Change] = field(default_factory=list)
    skipped: list[Change] = field(default_factory=list)  # judged before, skipped now

    @property
    def must_regressed(self) -> bool:
        return any(c.must for c in self.regressions)

    def render(self, old_name: str, new_name: str) -> str:
        lines = [f"logprobe diff: {old_name} -> {new_name}"]
        for title, changes in (("regressions", self.regressions), ("fixes", self.fixes),
                               ("skipped now", self.skipped), ("other changes", self.changed),
                               ("new checks", self.new), ("removed checks", self.removed)):
            lines.append(f"{title}: {len(changes)}")
            lines += [f"  {c.line()}" for c in changes]
        lines.append("verdict: " + ("REGRESSED (a MUST got worse)" if self.must_regressed
                                    else "no MUST regression"))
        return "\n".join(lines)


def _classify(out: RunDiff, change: Change) -> None:
    old, new = change.old, change.new
    if old is None:
        out.new.append(change)
    elif new is None:
        out.removed.append(change)
    elif old == new:
        return
    elif new == "SKIP":
        out.skipped.append(change)
    elif old in GOOD and (new in FAILING or new == Outcome.SERVER_DOWN):
        out.regressions.append(change)  # a test the server's death kept from passing
    elif old in FAILING and new in GOOD:
        out.fixes.append(change)
    else:
        out.changed.append(change)


def diff_runs(old: dict[str, Any], new: dict[str, Any]) -> RunDiff:
    levels = invariant_levels([old, new])
    out = RunDiff()
    old_col, new_col = column(old), column(new)
    for inv in sorted(set(old_col.cells) | set(new_col.cells)):
        a, b = old_col.cells.get(inv), new_col.cells.get(inv)
        if a is not None and b is not None and UNJUDGED & {a.status, b.status}:
            if a.status != b.status:  # reached in one run only: a change, not a verdict
                out.changed.append(Change("invariant", inv, a.status, b.status,
                                          levels.get(inv) == "MUST", (b or a).tests))
            continue
        _classify(out, Change("invariant", inv, a.status if a else None, b.status if b else None,
                              levels.get(inv) == "MUST", (b.tests if b else a.tests if a else [])))
    old_tests = {row["nodeid"]: row for row in old["tests"]}
    new_tests = {row["nodeid"]: row for row in new["tests"]}
    for nodeid in sorted(set(old_tests) | set(new_tests)):
        a_row, b_row = old_tests.get(nodeid), new_tests.get(nodeid)
        level = (b_row or {}).get("level") or (a_row or {}).get("level")  # not reached: None
        _classify(out, Change("test", nodeid, a_row["verdict"] if a_row else None,
                              b_row["verdict"] if b_row else None, level == "MUST",
                              (b_row or a_row or {}).get("violated") or []))
    return out
