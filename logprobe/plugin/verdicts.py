"""A test's verdict, decided once: from pytest's outcome, the judgement and the expectation
that names the test, to the verdict and message of its run.json row.

``settle`` turns a test-level expectation into XFAIL, XPASS or an unexpected failure;
``verdict_of`` is the one place a row's verdict comes from. Both are pure but for the
report they settle in place, and are tested table-driven in process.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from logprobe.expectations import Expectation
from logprobe.invariants.core import Level, Outcome, Verdict
from logprobe.judge import ConformanceFailure, HarnessError, Judgement
from logprobe.liveness import ServerDown

FLAKY_NOTE = ("(hypothesis: this example failed, then passed when replayed: the server "
              "answered the same request differently)\n")


def conformance_failure(exc: BaseException | None) -> tuple[ConformanceFailure | None, str]:
    """The conformance failure behind ``exc``, also inside hypothesis's FlakyFailure group
    (a failure that did not reproduce on replay is still a failure the server produced)."""
    if isinstance(exc, ConformanceFailure):
        return exc, ""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found, _ = conformance_failure(inner)
            if found is not None:
                return found, FLAKY_NOTE
    return None, ""


def settle(report: pytest.TestReport, expectation: Expectation,
           exc: BaseException | None) -> str | None:
    """Turn a test-level expectation into XFAIL, XPASS or an unexpected failure, in place.
    When the test passed although expected to fail (an XPASS: the entry is stale), what
    the report now says."""
    reason = f"{expectation.reason} ({expectation.evidence})"
    if report.passed:
        report.outcome = "failed"
        report.longrepr = f"[XPASS(strict)] {reason}"
        return report.longrepr
    failure, _ = conformance_failure(exc)
    got_verdict = failure.verdict.value if failure else "ERROR"
    got = {v.id for v in failure.violations} if failure else set()
    if failure is not None and expectation.matches_outcome(got_verdict, got):
        report.outcome = "skipped"
        report.wasxfail = reason
        return None
    wanted = " ".join(x for x in (expectation.verdict, expectation.invariant) if x) or "a failure"
    report.longrepr = (f"expected {wanted} ({expectation.reason}), but it ended "
                       f"{got_verdict} {', '.join(sorted(got)) or ''}: the known defect changed "
                       f"or another one appeared\n{report.longrepr}")
    return None


def settle_stopped_by_expected(report: pytest.TestReport, judgement: Judgement,
                               exc: BaseException | None) -> None:
    """A test whose response broke a MUST that an expectation file names cannot use that
    response for what it checks next (the chat shape on completions has no
    ``token_logprobs`` to read): when it then stops on something that is not a verdict (a
    KeyError, a TypeError), the known deviation stopped it, and the test is expected, with
    that entry's reason. A verdict (another violation), a harness error, or an assertion
    stays what it is."""
    if not report.failed or exc is None or isinstance(exc, AssertionError | HarnessError):
        return
    if conformance_failure(exc)[0] is not None:
        return
    known = [(v, e) for v, e in judgement.expected if v.level is Level.MUST]
    if not known:
        return
    violation, entry = known[0]
    report.outcome = "skipped"
    report.wasxfail = (f"stopped by the expected {violation.id} ({entry.reason}; {entry.evidence}): "
                       f"the test could not go on ({type(exc).__name__}: {exc})")


@dataclass(frozen=True)
class Ending:
    """How a test ended, as the row's verdict reads it."""

    outcome: str  # pytest's: passed, failed or skipped
    wasxfail: str | None  # the reason of an XFAIL, when it is one
    xpass: str | None  # passed, although an expectation said it fails: what settle wrote
    exc: BaseException | None
    failure: ConformanceFailure | None
    note: str  # what to say before the failure (a flaky example, a death after it)
    down: ServerDown | None  # the server was found down, and the test had no failure of its own


def verdict_of(ending: Ending, judgement: Judgement) -> tuple[Verdict | Outcome, str]:
    """The row's verdict and message, decided in one place."""
    exc = ending.exc
    if ending.down is not None and ending.failure is None:
        return Outcome.SERVER_DOWN, f"not reached: the server is down ({ending.down.reason})"
    if ending.outcome == "passed" and judgement.judged_nothing:
        return Verdict.NA, "nothing to judge: " + "; ".join(
            f"{i}: {why.removeprefix('nothing to judge: ')}"
            for i, why in sorted(judgement.not_judged().items()))
    if ending.outcome == "passed":
        return Verdict.PASS, ""
    if ending.outcome == "skipped":
        if ending.wasxfail is not None:
            return Outcome.XFAIL, ending.wasxfail or str(exc or "")
        return Outcome.SKIP, str(exc or "")
    if ending.xpass is not None:
        return Outcome.XPASS, f"{ending.xpass}: the expectation is stale"
    if isinstance(exc, HarnessError):
        return Verdict.ERROR, f"harness error (not the server's): {exc}"
    if ending.failure is not None:
        return ending.failure.verdict, f"{ending.note}{ending.failure}"
    if isinstance(exc, AssertionError):
        return Verdict.FAIL, str(exc)
    return Verdict.ERROR, f"{type(exc).__name__}: {exc}" if exc else "error"
