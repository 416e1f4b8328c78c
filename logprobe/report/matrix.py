"""The backend x invariant matrix that reports and diffs are built from.

A run.json lists tests; each test names the invariants it judged and the MUST
ones it violated. An invariant's cell for one backend is the worst thing any
test said about it: violated (the test's verdict: FAIL, ERROR, UNSUPPORTED,
IGNORED), an expected deviation, a SHOULD/INFO finding, a pass, or nothing
reached (the test stopped on another invariant first). One failing test can
never be averaged away: the cell shows it, and the score line lists it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logprobe.invariants.core import FAILING, SEVERITY

# NOT_REACHED: judged by no test that got that far on this backend; N/A: reached, but
# the response had nothing to judge (no logprobs came back). Neither counts as holding.
UNJUDGED = frozenset({"NOT_REACHED", "N/A"})


@dataclass
class Cell:
    status: str = "NOT_REACHED"
    tests: list[str] = field(default_factory=list)  # the tests that set the status

    def merge(self, status: str, nodeid: str) -> None:
        if SEVERITY.index(status) < SEVERITY.index(self.status):
            self.status, self.tests = status, [nodeid]
        elif status == self.status and nodeid not in self.tests:
            self.tests.append(nodeid)


@dataclass
class Column:
    """One backend's run: its cells by invariant id, and the run it came from."""

    name: str
    run: dict[str, Any]
    cells: dict[str, Cell] = field(default_factory=dict)

    def score(self, levels: dict[str, str]) -> tuple[int, int, list[str]]:
        """(MUST invariants passed, MUST invariants judged, the failing ones by id)."""
        must = {i: c for i, c in self.cells.items() if levels.get(i) == "MUST"}
        reached = {i: c for i, c in must.items() if c.status not in UNJUDGED}
        failing = sorted(i for i, c in reached.items() if c.status in FAILING)
        return len(reached) - len(failing), len(reached), failing


def load_run(path: str | Path) -> dict[str, Any]:
    try:
        run = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable run.json ({exc})") from exc
    if not isinstance(run, dict) or "tests" not in run:
        raise ValueError(f"{path}: not a logprobe run.json (no 'tests')")
    return run


def backend_name(run: dict[str, Any]) -> str:
    backend = run.get("backend") or {}
    name = backend.get("name") or backend.get("base_url") or "?"
    return f"{name} ({'+'.join(backend['faults'])})" if backend.get("faults") else str(name)


def column(run: dict[str, Any], name: str | None = None) -> Column:
    col = Column(name or backend_name(run), run)
    for row in run["tests"]:
        verdict = row.get("verdict", "ERROR")
        violated = set(row.get("violated") or [])
        for inv in row.get("invariants") or []:
            if inv in violated:
                status = verdict if verdict in FAILING else "FAIL"
            elif verdict == "XFAIL":
                status = "EXPECTED"
            elif verdict == "XPASS":
                status = "XPASS"
            elif verdict == "PASS":
                status = "PASS"
            else:
                status = "NOT_REACHED"
            col.cells.setdefault(inv, Cell()).merge(status, row["nodeid"])
        for entry in row.get("unjudged") or []:
            col.cells.setdefault(entry["invariant"], Cell()).merge("N/A", row["nodeid"])
        for finding in row.get("findings") or []:
            level = finding.get("level")
            status = level if level in ("EXPECTED", "SHOULD", "INFO") else None
            if status:
                col.cells.setdefault(finding["invariant"], Cell()).merge(status, row["nodeid"])
    return col


def invariant_levels(runs: Sequence[dict[str, Any]] = ()) -> dict[str, str]:
    """Every declared invariant's level, by id."""
    return {i: inv.level.value for i, inv in catalogue(runs).items()}


def catalogue(runs: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """This installation's invariants, and those the runs declared that it does not know
    (a plugin's, another version's): a report reads run.json alone."""
    from logprobe.invariants.core import Invariant, Level

    known = declared()
    for run in runs:
        for i, decl in (run.get("invariants") or {}).items():
            if i not in known and isinstance(decl, dict) and decl.get("level") in Level.__members__:
                known[i] = Invariant(i, Level(decl["level"]), str(decl.get("statement", "")),
                                     str(decl.get("source", "")))
    return known


def declared() -> dict[str, Any]:
    """Every invariant declared in this process: the package's and any a plugin added."""
    import logprobe.invariants.catalogue  # noqa: F401  (imports every check module)
    from logprobe.invariants.core import CATALOGUE

    return dict(CATALOGUE)
