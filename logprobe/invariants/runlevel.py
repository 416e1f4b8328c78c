"""Run-level checks: judgements of the whole run, each a row of its own in run.json.

An exchange check judges one response; a run-level check reads every test's row (their
``data``, under keys the checks that wrote them name as constants) and the backend's
description, and returns one ``RunJudgement``. They register with ``@run_check`` beside
their invariants, as schemathesis's ``after_run`` checks do, so that a new one needs no
change to the pytest plugin, which turns each judgement into a row by one rule
(``logprobe.plugin.run_level``).

Whether a request took the server down (SRV-001) is judged by the plugin itself: it may
restart the server to replay the suspects, which no pure check can do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from logprobe.invariants.core import Level, Violation
from logprobe.tolerance import Drift, Tolerance


@dataclass(frozen=True)
class RunView:
    """What a run-level check reads: every test's run.json row, and the backend's row."""

    rows: list[dict[str, Any]]
    backend: dict[str, Any]
    tolerance: Tolerance


@dataclass
class RunJudgement:
    """One run-level row, before the plugin applies the run's expectations to it."""

    nodeid: str
    invariants: list[str]
    level: Level
    violations: list[Violation]  # MUST failures, findings, and nothing-to-judge markers
    data: dict[str, Any] = field(default_factory=dict)
    # Whether the run's expectation entries (those naming no test) may expect its findings.
    expectable: bool = False


RunCheck = Callable[[RunView], RunJudgement | None]
RUN_CHECKS: list[RunCheck] = []


def run_check(check: RunCheck) -> RunCheck:
    """Register a run-level check; None from it: nothing of the kind happened in the run."""
    RUN_CHECKS.append(check)
    return check


# The modules that declare run-level checks, in the order their rows are added to a run
# (not the order someone happened to import them in); a check declared elsewhere is an error.
RUN_CHECK_MODULES = ("logprobe.invariants.errors", "logprobe.invariants.differential",
                     "logprobe.invariants.consistency", "logprobe.invariants.numerics")


def registered() -> list[RunCheck]:
    """Every run-level check, ordered by ``RUN_CHECK_MODULES`` (stable within a module)."""
    import logprobe.invariants.catalogue  # noqa: F401  (every invariant module, registered)

    unlisted = sorted({c.__module__ for c in RUN_CHECKS} - set(RUN_CHECK_MODULES))
    if unlisted:
        raise RuntimeError(f"run-level checks declared outside RUN_CHECK_MODULES: {unlisted}")
    return sorted(RUN_CHECKS, key=lambda c: RUN_CHECK_MODULES.index(c.__module__))


def drift_data(drift: Drift) -> dict[str, Any]:
    """A pooled drift as a run-level row keeps it."""
    return {"drift": {"tokens": drift.n, "max": round(drift.max, 6),
                      "p99": round(drift.quantile(0.99), 6), "median": round(drift.median, 6)}}
