"""The run judged as a whole at the session's end: first whether a request took the server
down (SRV-001, which may restart it to replay the suspects), then every registered
run-level check (``logprobe.invariants.runlevel``), each turned into a row by one rule."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from logprobe import liveness
from logprobe.backend import Backend
from logprobe.expectations import Expectation, expected_by
from logprobe.invariants import survival
from logprobe.invariants.core import Level, Verdict
from logprobe.invariants.runlevel import RunJudgement, RunView, registered
from logprobe.plugin.keys import EXPECTATIONS_KEY
from logprobe.plugin.options import options_of
from logprobe.plugin.rows import finding_rows
from logprobe.plugin.terminal import terminal_line
from logprobe.report.run import RunReport, TestRow


def judge_run(config: pytest.Config, run: RunReport, backend: Backend | None) -> bool:
    """Add the run-level rows to ``run``; True if a MUST failed (or the server died).
    ``backend``: what this process opened, None when the run was interrupted."""
    died = _survival(config, run, backend)
    view = RunView([asdict(row) for row in run.tests], run.backend, options_of(config).tolerance)
    chosen = config.stash.get(EXPECTATIONS_KEY, None)
    entries = chosen.applying(run.backend.get("server_version")) if chosen else []
    failed = False
    for check in registered():
        judged = check(view)
        if judged is not None:
            row = run_row(judged, entries)
            run.add(row)
            failed = failed or row.verdict == Verdict.FAIL.value
    return failed or died


def run_row(judged: RunJudgement, entries: list[Expectation]) -> TestRow:
    """A run-level judgement as a row: its MUST violations fail it, its nothing-to-judge
    markers make it N/A and say why, the rest are findings, EXPECTED where one of the run's
    expectation ``entries`` (naming no test) describes them and the check allows it."""
    markers = [v for v in judged.violations if v.verdict is Verdict.NA]
    found = [v for v in judged.violations if v.verdict is not Verdict.NA]
    expected = []
    if judged.expectable:
        for v in found:
            entry = expected_by(entries, v.id, v.verdict.value, v.message)
            if entry is not None:
                expected.append((v, entry))
        found = [v for v in found if v not in {x for x, _ in expected}]
    must = [v for v in found if v.level is Level.MUST]
    verdict = Verdict.FAIL if must else Verdict.NA if markers else Verdict.PASS
    return TestRow(
        nodeid=judged.nodeid, invariants=judged.invariants, level=judged.level.value,
        verdict=verdict.value, message="\n".join(v.render() for v in must + markers)[:4000],
        violated=sorted({v.id for v in must}),
        findings=finding_rows([v for v in found if v.level is not Level.MUST], expected),
        unjudged=[{"invariant": v.id, "reason": v.message} for v in markers],
        data=judged.data)


def _survival(config: pytest.Config, run: RunReport, backend: Backend | None) -> bool:
    """SRV-001: if a test found the server down, one row naming the death and its
    suspects (every worker's recent exchanges, merged), narrowed to the request that
    kills it when the suite can restart what it started. True if the server died."""
    seen = [(row.data or {}).get(survival.MEASURE) for row in run.tests]
    seen = [s for s in seen if s]
    if not seen:
        return False
    reason = (liveness.process_gone(backend) if backend is not None else None) or \
        min(seen, key=lambda s: s.get("detected_at") or 0)["reason"]
    named = survival.suspects(survival.merge([e for s in seen for e in s["exchanges"]]))
    options = options_of(config)
    if backend is not None and named and liveness.restartable(backend):
        terminal_line(config)(f"replaying the {len(named)} suspects one at a time, against "
                              "the server restarted where the suite started it")
    narrowed = liveness.narrow(backend, named, options.api_key, options.request_timeout) \
        if backend is not None else {"killer": None, "replayed": 0,
                                     "why": "the run was interrupted"}
    [violation] = survival.check_survived(reason, named, narrowed)
    killer = narrowed.get("killer")
    run.add(TestRow(
        nodeid=survival.RUN_NODEID, invariants=[survival.SRV_001.id], level="MUST",
        verdict=Verdict.FAIL.value, message=violation.render()[:4000],
        violated=[survival.SRV_001.id], findings=[],
        reproducers=([killer["curl"]] if killer else []) + [
            e["curl"] for e in named if not killer or e["curl"] != killer["curl"]][:6],
        data={"reason": reason, "suspects": named, "narrowed": narrowed}))
    return True
