"""The vocabulary of verdicts: invariants, levels, violations.

An invariant is data about the spec: a stable id, a level, a one-line
statement and where it comes from. Check functions are pure: they take the
request and the parsed response and return the violations they found, never
raise and never do I/O, so the same code judges hand-written cases,
hypothesis-generated ones and recorded JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Level(StrEnum):
    MUST = "MUST"  # a violation fails the run
    SHOULD = "SHOULD"  # reported, not fatal
    INFO = "INFO"  # describes the backend


class Verdict(StrEnum):
    """What the server did, as the checks judged it."""

    PASS = "PASS"
    FAIL = "FAIL"
    UNSUPPORTED = "UNSUPPORTED"  # a clean 4xx with an OpenAI error object
    IGNORED = "IGNORED"  # a 200 that silently dropped what was asked
    ERROR = "ERROR"  # 5xx, timeout, broken JSON, transport failure
    NA = "N/A"  # the check had nothing to judge: never a pass


class Outcome(StrEnum):
    """What pytest made of a test when no verdict on the server was reached."""

    SKIP = "SKIP"
    XFAIL = "XFAIL"  # failed as an expectations file said it would
    XPASS = "XPASS"  # passed although an expectation said it would not
    SERVER_DOWN = "SERVER_DOWN"  # not reached: the server was down before the test ran


class Mark(StrEnum):
    """What a matrix cell shows besides a verdict: a finding's level, a known deviation,
    or that no test of the run reached the invariant."""

    EXPECTED = "EXPECTED"
    SHOULD = "SHOULD"
    INFO = "INFO"
    NOT_REACHED = "NOT_REACHED"


# The one severity order (worst first) of every status a test row or a matrix cell can
# carry: the judge picks a test's verdict by it, the matrix a cell's, the diff a change's.
# A broken transport leads (nothing behind it could be judged), then a dropped feature,
# a refusal, wrong values; then what is not fatal; then what judged nothing.
SEVERITY: list[str] = [
    Verdict.ERROR, Verdict.IGNORED, Verdict.UNSUPPORTED, Verdict.FAIL, Outcome.XPASS,
    Mark.EXPECTED, Mark.SHOULD, Mark.INFO, Verdict.PASS, Verdict.NA, Outcome.SKIP,
    Outcome.SERVER_DOWN, Mark.NOT_REACHED]
FAILING = frozenset({Verdict.ERROR, Verdict.IGNORED, Verdict.UNSUPPORTED, Verdict.FAIL,
                     Outcome.XPASS})
GOOD = frozenset({Verdict.PASS, Mark.EXPECTED, Mark.SHOULD, Mark.INFO, Outcome.XFAIL})


def worst(statuses: list[str]) -> str:
    return min(statuses, key=lambda s: SEVERITY.index(s) if s in SEVERITY else len(SEVERITY))


@dataclass(frozen=True)
class Invariant:
    id: str
    level: Level
    statement: str
    source: str


CATALOGUE: dict[str, Invariant] = {}


def invariant(id: str, level: Level, statement: str, source: str) -> Invariant:
    """Declare an invariant once; ids are stable once published."""
    if id in CATALOGUE:
        raise ValueError(f"invariant {id} declared twice")
    inv = Invariant(id, level, statement, source)
    CATALOGUE[id] = inv
    return inv


@dataclass(frozen=True)
class Violation:
    invariant: Invariant
    message: str
    location: str = ""
    expected: Any = None
    actual: Any = None
    verdict: Verdict = Verdict.FAIL

    @property
    def id(self) -> str:
        return self.invariant.id

    @property
    def level(self) -> Level:
        return self.invariant.level

    def render(self) -> str:
        where = f" at {self.location}" if self.location else ""
        text = f"[{self.level} {self.id}]{where}: {self.message}"
        if self.expected is not None or self.actual is not None:
            text += f"\n    expected: {trim(self.expected)}\n    actual:   {trim(self.actual)}"
        return text


Check = Callable[..., list[Violation]]
# An exchange check: (the request as sent, the parsed body, or a stream's list of events).
ExchangeCheck = Callable[[dict[str, Any], Any], list[Violation]]
# Whether an exchange check applies to a request sent to a path.
When = Callable[[str, dict[str, Any]], bool]


@dataclass(frozen=True)
class Registered:
    """A check and what it judges. With ``when``, an exchange check: the properties, the
    pinned request shapes and ``catalogue.checks_for`` run it on every exchange whose
    request ``when`` accepts. Without, it compares several exchanges (or a run) and the
    tests that build those call it."""

    fn: Check
    invariants: tuple[Invariant, ...]
    when: When | None


REGISTRY: dict[str, Registered] = {}


def nothing_to_judge(why: str, *invariants: Invariant) -> list[Violation]:
    """Markers, not violations: these invariants had nothing to judge in this response (no
    logprobs came back, the request did not ask for what they judge). The judge records
    them as N/A, which no report counts as a pass."""
    return [Violation(inv, f"nothing to judge: {why}", verdict=Verdict.NA) for inv in invariants]


def checks(*invariants: Invariant, when: When | None = None) -> Callable[[Check], Check]:
    """Register a check with the invariants it judges (and, for an exchange check, the
    requests it applies to). Declaring an invariant and registering its check in one
    module of ``logprobe/invariants/`` is all it takes for the suites, the properties,
    the coverage test and the report to pick it up."""

    def mark(fn: Check) -> Check:
        fn.invariants = tuple(invariants)  # type: ignore[attr-defined]
        REGISTRY[f"{fn.__module__}.{fn.__qualname__}"] = Registered(fn, tuple(invariants), when)
        return fn

    return mark


def exchange_checks(path: str, request: dict[str, Any]) -> list[ExchangeCheck]:
    """Every registered exchange check that applies to ``request`` sent to ``path``."""
    return [r.fn for r in REGISTRY.values() if r.when is not None and r.when(path, request)]


def bind(fn: Check, *args: Any) -> ExchangeCheck:
    """``fn`` as an exchange check, with what the test knows beyond the exchange (prompt
    token counts from a tokenizer) passed after (request, body)."""

    def bound(request: dict[str, Any], body: Any) -> list[Violation]:
        return fn(request, body, *args)

    bound.invariants = invariants_of(fn)  # type: ignore[attr-defined]
    bound.__name__ = getattr(fn, "__name__", "check")
    return bound


def invariants_of(fn: Check) -> tuple[Invariant, ...]:
    return tuple(getattr(fn, "invariants", ()))


def trim(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def is_number(value: Any) -> bool:
    """A JSON number: int or float, and not a bool (JSON's true is not 1)."""
    return isinstance(value, int | float) and not isinstance(value, bool)
