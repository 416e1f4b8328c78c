"""Each test's run.json row, made where the test ran (an xdist worker, or this process) and
attached to its report, which carries it to the collector.

Rows and traffic travel as JSON text: execnet, which carries reports to the xdist
controller, cannot encode an integer below -2**31 (a generated invalid request holds
such values) and the worker died of it.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import pytest

from logprobe import liveness
from logprobe.expectations import Expectation
from logprobe.invariants import errors, survival
from logprobe.invariants.core import Level, Verdict, Violation
from logprobe.judge import ConformanceFailure, HarnessError, Judgement
from logprobe.liveness import ServerDown, down_of
from logprobe.plugin.keys import (
    CLIENT_KEY,
    EXPECTATION_KEY,
    FAILURES_KEY,
    JUDGEMENT_KEY,
    TRAFFIC_CURSOR_KEY,
    WATCH_KEY,
)
from logprobe.plugin.verdicts import (
    Ending,
    conformance_failure,
    settle,
    settle_stopped_by_expected,
    verdict_of,
)
from logprobe.report.run import TestRow

MAX_FAILURES = 50  # a row's MUST violations kept one by one (the message renders 12)
ROW_EXCHANGES = 6  # a row's exchanges and reproducers kept


@pytest.hookimpl(specname="pytest_runtest_makereport", tryfirst=True)
def pytest_runtest_makereport_concise(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> pytest.TestReport | None:
    """A conformance failure's message already says everything a reader needs (the
    invariant, expected and actual, the response, a reproducer): report it without
    a Python traceback, which is noise here (and which CPython 3.11 can fail to
    render after lm-eval has run in the process)."""
    exc = call.excinfo.value if call.excinfo else None
    down = down_of(exc)
    if down is not None:
        text = (f"{item.nodeid}\nthe server is down ({down.reason}): see {survival.RUN_NODEID} "
                "in the report for the requests that may have taken it down")
    else:
        failure, note = conformance_failure(exc)
        if failure is None:
            return None
        text = f"{item.nodeid}\n{note}{failure}"
    return pytest.TestReport(
        item.nodeid, item.location, dict.fromkeys(item.keywords, 1), "failed", text,
        call.when, [], call.duration, call.start, call.stop, item.user_properties)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "teardown":
        report.logprobe_traffic = json.dumps(_new_traffic(item.config))
    if "backend" not in getattr(item, "fixturenames", ()):
        return report  # not a conformance test (e.g. the project's own tests)
    expectation = item.stash.get(EXPECTATION_KEY, None)
    judgement = item.stash.get(JUDGEMENT_KEY, None)
    exc = call.excinfo.value if call.excinfo else None
    xpass = None
    if down_of(exc) is not None:
        pass  # the server is down: no expectation can be settled (see _at_death)
    elif expectation is not None and report.when == "call":
        xpass = settle(report, expectation, exc)
    elif report.when == "call" and judgement is not None:
        settle_stopped_by_expected(report, judgement, exc)
    if report.when == "call" or (report.when == "setup" and not report.passed):
        report.logprobe_row = json.dumps(asdict(_row(item, report, exc, judgement or Judgement(),
                                                     xpass)), default=str)
        # default=str: as run.json writes it, a raw request body becomes its repr
    return report


def _new_traffic(config: pytest.Config) -> list[list[float]]:
    """The exchanges sent since the last report, as plain spans for the collector:
    [started (monotonic, one clock machine-wide), elapsed, prompt, completion]."""
    client = config.stash.get(CLIENT_KEY, None)
    if client is None:
        return []
    start = config.stash.get(TRAFFIC_CURSOR_KEY, 0)
    config.stash[TRAFFIC_CURSOR_KEY] = len(client.exchanges)
    return [_span(exchange) for exchange in client.exchanges[start:]]


def _span(exchange: Any) -> list[float]:
    body = exchange.json if not exchange.stream else None
    usage = body.get("usage") if isinstance(body, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    return [exchange.started_at, exchange.elapsed, usage.get("prompt_tokens") or 0,
            usage.get("completion_tokens") or 0]


def _row(item: pytest.Item, report: pytest.TestReport, exc: BaseException | None,
         judgement: Judgement, xpass: str | None) -> TestRow:
    """The test's run.json row."""
    failure, note = conformance_failure(exc)
    down = down_of(exc)
    if down is not None:
        judgement, failure, note = _at_death(item, down, judgement)
    watch = item.config.stash.get(WATCH_KEY, None)
    evidence = watch.evidence() if watch is not None else None
    if evidence is not None:  # the first row this process ends once the death is known
        judgement.data[survival.MEASURE] = evidence
    violations = list(judgement.violations) + (list(failure.violations) if failure else [])
    verdict, message = verdict_of(Ending(
        outcome=report.outcome, wasxfail=getattr(report, "wasxfail", None), xpass=xpass,
        exc=exc, failure=failure, note=note, down=down), judgement)
    level = judgement.level
    exchanges = judgement.exchanges[:ROW_EXCHANGES]
    return TestRow(
        nodeid=item.nodeid,
        invariants=sorted((judgement.invariants - set(judgement.not_judged()))
                          | {v.id for v in violations}),
        level=level.value if level else None,
        verdict=verdict.value,
        message=message[:4000],
        violated=sorted({v.id for v in violations if v.level is Level.MUST}),
        failures=failure_rows(violations, judgement),
        findings=finding_rows(judgement.findings, judgement.expected),
        unjudged=[{"invariant": i, "reason": why}
                  for i, why in sorted(judgement.not_judged().items())],
        reproducers=[e.curl() for e in exchanges],
        duration_s=round(report.duration, 3),
        retries=sum(len(e.retries) for e in judgement.exchanges),
        exchanges=[e.to_record() for e in exchanges],
        data=judgement.data,
        harness_error=isinstance(exc, HarnessError),
    )


def failure_rows(violations: list[Violation], judgement: Judgement) -> list[dict[str, Any]]:
    """run.json's failures of a row: each MUST violation once, with the curl of the exchange
    it was found in (a test sends several; the row's first reproducer may be another's).
    The row's list holds the failure's violations twice (the judgement keeps them too):
    the same object is counted once, two equal findings of two exchanges twice."""
    must = {id(v): v for v in violations if v.level is Level.MUST}
    rows = []
    for v in list(must.values())[:MAX_FAILURES]:
        source = judgement.source(v)
        rows.append({"invariant": v.id, "location": v.location, "message": v.message[:400],
                     "reproducer": source.curl() if source is not None else None})
    return rows


def _at_death(item: pytest.Item, down: ServerDown, judgement: Judgement
              ) -> tuple[Judgement, ConformanceFailure | None, str]:
    """What a test that stopped on a dead server reports: its first failure if it had one
    (a property test's first failing example, not shrunk against the dead server); else
    its request in flight when the server went down (an ERROR with that request: a
    suspect); else nothing of its own, with no request (not reached)."""
    first = (item.stash.get(FAILURES_KEY, None) or [None])[0]
    if first is not None:
        failure, judgement = first
        note = (f"(then the server went down: {down.reason}; the test stopped there, this "
                "example as it first failed)\n")
    elif down.reached and down.exchange is not None:
        judgement.exchanges.append(down.exchange)
        failure = ConformanceFailure(Verdict.ERROR, [Violation(
            errors.ERR_004, f"the server went down with this request in flight ({down.reason}): "
            f"{liveness.record(down.exchange)['summary']}; see {survival.RUN_NODEID}",
            verdict=Verdict.ERROR)], [down.exchange])
        note = ""
    else:
        judgement, failure, note = Judgement(data=judgement.data), None, ""
    return judgement, failure, note


def finding_rows(findings: list[Violation],
                 expected: list[tuple[Violation, Expectation]]) -> list[dict[str, Any]]:
    """run.json's findings of a row: the SHOULD and INFO violations, then the EXPECTED ones
    with the reason and evidence of the entry that expected them."""
    return [{"invariant": v.id, "level": v.level.value, "message": v.render()} for v in findings] \
        + [{"invariant": v.id, "level": "EXPECTED", "message": f"{v.render()}\n    expected: "
            f"{e.reason}", "evidence": e.evidence} for v, e in expected]
