"""The one owner of a test's verdict (``logprobe.plugin.verdicts``) and of a run-level row
(``logprobe.plugin.run_level.run_row``), table-driven and in process: every way a test can
end, and what its run.json row then says."""

from __future__ import annotations

import pytest

from logprobe.expectations import Expectation
from logprobe.invariants import errors, numerics, values
from logprobe.invariants.core import Level, Outcome, Verdict, Violation
from logprobe.invariants.runlevel import RunJudgement
from logprobe.judge import ConformanceFailure, HarnessError, Judgement
from logprobe.liveness import ServerDown
from logprobe.plugin.run_level import run_row
from logprobe.plugin.verdicts import FLAKY_NOTE, Ending, conformance_failure, settle, verdict_of

FAIL = ConformanceFailure(Verdict.FAIL, [Violation(values.VAL_001, "a logprob of +0.5")], [])
IGNORED = ConformanceFailure(Verdict.IGNORED, [Violation(values.VAL_001, "ignored")], [])
DOWN = ServerDown("connection refused")


def ending(outcome: str = "passed", *, exc: BaseException | None = None,
           wasxfail: str | None = None, xpass: str | None = None,
           down: ServerDown | None = None) -> Ending:
    failure, note = conformance_failure(exc)
    return Ending(outcome, wasxfail, xpass, exc, failure, note, down)


def judged(*, checked: bool = True) -> Judgement:
    judgement = Judgement(invariants={"VAL-001"})
    if checked:
        judgement.checked.add("VAL-001")
    else:
        judgement.unjudged["VAL-001"] = "nothing to judge: no logprobs"
    return judgement


@pytest.mark.parametrize("end, judgement, verdict, words", [
    (ending(), judged(), Verdict.PASS, ""),
    (ending(), judged(checked=False), Verdict.NA, "nothing to judge: VAL-001: no logprobs"),
    (ending("failed", exc=FAIL), judged(), Verdict.FAIL, "VAL-001"),
    (ending("failed", exc=IGNORED), judged(), Verdict.IGNORED, "ignored"),
    (ending("failed", exc=AssertionError("plain assert")), judged(), Verdict.FAIL, "plain assert"),
    (ending("failed", exc=HarnessError("no tokenizer")), judged(), Verdict.ERROR,
     "harness error (not the server's): no tokenizer"),
    (ending("failed", exc=KeyError("tokens")), judged(), Verdict.ERROR, "KeyError: 'tokens'"),
    (ending("skipped", exc=pytest.skip.Exception("needs --tokenizer")), judged(), Outcome.SKIP,
     "needs --tokenizer"),
    (ending("skipped", wasxfail="known (evidence)"), judged(), Outcome.XFAIL, "known (evidence)"),
    (ending("failed", xpass="[XPASS(strict)] known (evidence)"), judged(), Outcome.XPASS,
     "[XPASS(strict)] known (evidence): the expectation is stale"),
    (ending("failed", exc=DOWN, down=DOWN), judged(), Outcome.SERVER_DOWN,
     "not reached: the server is down (connection refused)"),
    # A failure found before the server went down is the test's verdict, not SERVER_DOWN.
    (ending("failed", exc=FAIL, down=DOWN), judged(), Verdict.FAIL, "VAL-001"),
], ids=["pass", "nothing-judged", "fail", "ignored", "assertion", "harness", "crash", "skip",
        "xfail", "xpass", "down", "failed-then-down"])
def test_every_ending_has_one_verdict(end, judgement, verdict, words):
    got, message = verdict_of(end, judgement)
    assert got is verdict
    assert words in message


def test_a_failure_inside_a_flaky_group_is_still_the_servers_and_says_so():
    group = BaseExceptionGroup("flaky", [ValueError("replayed"), FAIL])
    failure, note = conformance_failure(group)
    assert failure is FAIL and note == FLAKY_NOTE
    assert verdict_of(ending("failed", exc=group), judged())[1].startswith(FLAKY_NOTE)


def report(outcome: str) -> pytest.TestReport:
    return pytest.TestReport("suites/test_x.py::test_y", ("x", 1, "y"), {}, outcome,
                             "the longrepr" if outcome == "failed" else None, "call")


ENTRY = Expectation(reason="known", evidence="an issue", test="suites/test_x.py::test_y",
                    invariant="VAL-001", verdict="FAIL")


@pytest.mark.parametrize("outcome, exc, entry, after, xpassed, words", [
    ("passed", None, ENTRY, "failed", True, "[XPASS(strict)] known (an issue)"),
    ("failed", FAIL, ENTRY, "skipped", False, None),
    ("failed", FAIL, Expectation("known", "an issue", test="t"), "skipped", False, None),
    ("failed", IGNORED, ENTRY, "failed", False, "expected FAIL VAL-001 (known), but it ended "
     "IGNORED VAL-001"),
    ("failed", FAIL, Expectation("known", "an issue", test="t", invariant="VAL-003"), "failed",
     False, "expected VAL-003 (known), but it ended FAIL VAL-001"),
    ("failed", KeyError("tokens"), ENTRY, "failed", False, "but it ended ERROR"),
], ids=["pass-is-xpass", "as-said", "any-failure", "other-verdict", "other-invariant", "crash"])
def test_a_test_level_expectation_settles_the_outcome(outcome, exc, entry, after, xpassed,
                                                     words):
    settled = report(outcome)
    xpass = settle(settled, entry, exc)
    assert settled.outcome == after
    assert (xpass is not None) is xpassed
    if after == "skipped":
        assert settled.wasxfail == "known (an issue)"
    if words:
        assert words in str(settled.longrepr)


def drift_judgement(*violations: Violation, expectable: bool = True) -> RunJudgement:
    return RunJudgement(numerics.RUN_NODEID, ["NUM-001", "NUM-002"], Level.MUST, list(violations),
                        {"drift": {"tokens": 30}}, expectable=expectable)


MEDIAN = Violation(numerics.NUM_001, "echo and generated logprobs differ systematically")
SUMMARY = Violation(numerics.NUM_002, "echo vs generation drift over 30 tokens")
TOO_FEW = Violation(numerics.NUM_001, "3 tokens are too few", verdict=Verdict.NA)
KNOWN = Expectation("known drift", "an issue", invariant="NUM-001")


@pytest.mark.parametrize("judgement, entries, verdict, violated, levels, unjudged", [
    (drift_judgement(SUMMARY), [], "PASS", [], ["INFO"], []),
    (drift_judgement(MEDIAN, SUMMARY), [], "FAIL", ["NUM-001"], ["INFO"], []),
    (drift_judgement(SUMMARY, TOO_FEW), [], "N/A", [], ["INFO"], ["NUM-001"]),
    (drift_judgement(MEDIAN, SUMMARY), [KNOWN], "PASS", [], ["INFO", "EXPECTED"], []),
    (drift_judgement(MEDIAN, SUMMARY, expectable=False), [KNOWN], "FAIL", ["NUM-001"],
     ["INFO"], []),
    (RunJudgement("logprobe::run::limits", ["ERR-007"], Level.INFO,
                  [Violation(errors.ERR_007, "at most 5 logprobs")]), [], "PASS", [], ["INFO"], []),
], ids=["summary", "median-fails", "too-few", "expected", "not-expectable", "limits"])
def test_a_run_level_judgement_becomes_a_row_by_one_rule(judgement, entries, verdict, violated,
                                                        levels, unjudged):
    row = run_row(judgement, entries)
    assert (row.verdict, row.violated) == (verdict, violated)
    assert [f["level"] for f in row.findings] == levels
    assert [u["invariant"] for u in row.unjudged] == unjudged
    assert row.nodeid == judgement.nodeid and row.data == judgement.data
