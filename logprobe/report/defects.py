"""A run's failures and findings grouped by defect: one line each for a reader to act on.

One defect of a server shows in many tests: llama.cpp's server answering completions
logprobs in the chat shape fails some thirty of them, each with the same message at
another choice or chunk. A *defect* here is one invariant with one kind of message
(the message with its positions and numbers taken out), counted, with the tests it
touched and one reproducer. Where a kind is the signature of a defect the fault
registry models (``Fault.looks``), the group names it and where it was seen, and the
groups that name the same known defect become one, graded by its worst showing (a
FAIL in one test, a SHOULD of the strict schema in another). An INFO invariant is a measurement,
not a defect: its findings make one group whatever their wording.

A pure function of run.json's rows, so it serves old reports too: a row without
``failures`` (written before rows carried them) is read from its rendered message.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from logprobe.invariants.core import FAILING, Outcome

# "[MUST SHAPE-002] at choices[0].logprobs: message", as Violation.render writes a line.
RENDERED = re.compile(r"^\s*\[(MUST|SHOULD|INFO) ([A-Z]+-\d+)\](?: at \S+)?: (.*)$")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
MAX_KINDS = 10
KIND_CHARS = 100  # enough to tell kinds apart; response bodies quoted after it differ anyway
# A defect that fails the run: a failing verdict, or tests the server was down for.
FAILING_GRADES = FAILING | {Outcome.SERVER_DOWN}
ORDER = {"SERVER_DOWN": 0, "FAIL": 1, "ERROR": 2, "IGNORED": 3, "UNSUPPORTED": 4, "XPASS": 5,
         "EXPECTED": 6, "SHOULD": 7, "INFO": 8}


@dataclass
class Defect:
    """One defect: its grade (a verdict, or a finding's level), what it broke, how often."""

    grade: str
    invariant: str | None
    kind: str  # the message with positions and numbers taken out
    example: str  # one message as the run gave it
    count: int = 0  # times seen (a test may show it at several positions)
    tests: list[str] = field(default_factory=list)
    reproducer: str | None = None
    looks_like: dict[str, str] | None = None  # a known defect of the fault registry
    invariants: list[str] = field(default_factory=list)  # all of them, once merged
    kinds: list[str] = field(default_factory=list)  # the distinct kinds merged (the first 10)

    def headline(self) -> str:
        """The defect in one line: grade, invariants, count, what it is."""
        where = f"{len(self.tests)} test{'s' if len(self.tests) != 1 else ''}"
        seen = f"{self.count}x in {where}" if self.count > len(self.tests) else where
        ids = ", ".join(self.invariants) or "-"
        if self.looks_like:
            return f"{self.grade} {ids} ({seen}): {self.looks_like['description']}"
        others = len(self.kinds) - 1
        more = f" (and {others} other kind{'s' if others > 1 else ''})" if others > 0 else ""
        return f"{self.grade} {ids} ({seen}){more}: {self.example}"


def kind_of(message: str) -> str:
    """A message's kind: first line, numbers and indices as '#', cut to a length."""
    line = message.strip().splitlines()[0] if message.strip() else ""
    return NUMBER.sub("#", line)[:KIND_CHARS]


def _parse(line: str) -> tuple[str, str, str] | None:
    """(level, invariant, message) of a rendered violation line."""
    match = RENDERED.match(line)
    return (match.group(1), match.group(2), match.group(3)) if match else None


Seen = tuple[str, str | None, str, str | None]  # grade, invariant, message, reproducer


def _failures(row: dict[str, Any]) -> list[Seen]:
    """What a failed row reports, each with the curl of the request that showed it (the
    row's first reproducer where the row does not say)."""
    grade, first = row["verdict"], (row.get("reproducers") or [None])[0]
    if row.get("failures"):
        return [(grade, f["invariant"], f["message"], f.get("reproducer") or first)
                for f in row["failures"]]
    parsed = [p for p in map(_parse, (row.get("message") or "").splitlines()) if p]
    if parsed:
        return [(grade, inv, text, first) for _level, inv, text in parsed]
    message = (row.get("message") or "").strip()
    return [(grade, (row.get("violated") or [None])[0],
             message.splitlines()[0] if message else "", first)]


def _findings(row: dict[str, Any]) -> list[Seen]:
    found: list[Seen] = []
    for finding in row.get("findings") or []:
        first = (finding.get("message") or "").splitlines()[0] if finding.get("message") else ""
        parsed = _parse(first)
        found.append((finding.get("level") or "INFO", finding.get("invariant"),
                      parsed[2] if parsed else first, None))
    return found


def _signatures() -> list[tuple[str, str, Any]]:
    """(invariant, words, fault) for every known defect's signature."""
    from logprobe.faults import FAULTS

    return [(inv, words, fault) for fault in FAULTS.values() for inv, words in fault.looks]


def _known(invariant: str | None, message: str,
           signatures: list[tuple[str, str, Any]]) -> dict[str, str] | None:
    for inv, words, fault in signatures:
        if inv == invariant and words in message:
            return {"fault": fault.name, "description": fault.description,
                    "seen_in": fault.seen_in}
    return None


def group(run: dict[str, Any]) -> list[Defect]:
    """The run's defects, worst grade first, then the most tests touched."""
    signatures = _signatures()
    groups: dict[tuple[str, ...], Defect] = {}
    for row in run.get("tests") or []:
        seen = _failures(row) if row["verdict"] in FAILING else []
        if row["verdict"] == "SERVER_DOWN":
            seen = [("SERVER_DOWN", None, "not reached: the server is down", None)]
        for grade, invariant, message, reproducer in seen + _findings(row):
            kind = kind_of(message)
            known = _known(invariant, message, signatures) if grade != "INFO" else None
            if known:  # one defect, whatever grade each of its tests gave it
                key: tuple[str, ...] = ("known", known["fault"])
            elif grade == "INFO":
                key = (grade, invariant or "")
            else:
                key = (grade, invariant or "", kind)
            defect = groups.get(key)
            if defect is None:
                defect = groups[key] = Defect(grade, invariant, kind,
                                              message.splitlines()[0][:300] if message else "",
                                              looks_like=known)
            if ORDER.get(grade, 9) < ORDER.get(defect.grade, 9):
                defect.grade = grade
            defect.count += 1
            if kind not in defect.kinds and len(defect.kinds) < MAX_KINDS:
                defect.kinds.append(kind)
            if invariant and invariant not in defect.invariants:
                defect.invariants.append(invariant)
            if row["nodeid"] not in defect.tests:
                defect.tests.append(row["nodeid"])
            if defect.reproducer is None:
                defect.reproducer = reproducer
    return sorted(groups.values(), key=lambda d: (ORDER.get(d.grade, 9), -len(d.tests),
                                                  d.invariant or ""))


def as_records(defects: list[Defect]) -> list[dict[str, Any]]:
    """run.json's ``defects``."""
    return [asdict(d) for d in defects]
