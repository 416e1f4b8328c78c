"""The run report: every test's row gathered where every report ends up (this process, or
the xdist controller), the run judged as a whole at the session's end, run.json written,
and the server this process opened stopped."""

from __future__ import annotations

import json
import shutil
import time
from typing import Any

import pytest

from logprobe.backend import Backend
from logprobe.invariants import survival
from logprobe.plugin.keys import BACKEND_KEY, BASELINE_DIFF_KEY, REPORT_KEY, SHARE_DIR_KEY
from logprobe.plugin.options import options_of
from logprobe.plugin.run_level import judge_run
from logprobe.plugin.terminal import terminal_line
from logprobe.report.run import TestRow


class RunCollector:
    """Builds run.json from test reports, where every report ends up: in this process, or in
    the xdist controller (workers only attach rows and traffic to their reports)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.spans: list[list[float]] = []
        self.internal_error = False
        self.told_down = False

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        row = getattr(report, "logprobe_row", None)
        if row is not None:
            added = TestRow(**json.loads(row))
            self.config.stash[REPORT_KEY].add(added)
            self._tell_if_down(added)
        self.spans.extend(json.loads(getattr(report, "logprobe_traffic", None) or "[]"))

    def _tell_if_down(self, row: TestRow) -> None:
        """The first row that found the server down, told as it arrives: the rest of the
        run is not reached, and the end of the run names the suspects."""
        seen = (row.data or {}).get(survival.MEASURE)
        if self.told_down or not seen:
            return
        self.told_down = True
        terminal_line(self.config)(
            f"the server is down ({seen.get('reason')}), seen by {row.nodeid}; the tests "
            "after it are not reached, and the run's end names the requests it died on")

    def pytest_internalerror(self, excrepr: Any, excinfo: Any) -> None:
        """An xdist worker's internal error reaches the controller here, and pytest-xdist
        still exits 0 if no test failed (pytest-dev/pytest-xdist#1017): a gate must not
        pass a run whose tests never reported. Remembered, and the exit status set below."""
        self.internal_error = True

    @pytest.hookimpl(tryfirst=True)  # before junitxml writes its file
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        run = self.config.stash[REPORT_KEY]
        _junit_properties(self.config, run.backend)
        # The backend this process opened (the xdist controller's, or the session fixture's),
        # stopped once every worker is done and the run is judged: judging a server's death
        # may restart it to replay the suspects.
        backend = self.config.stash.get(BACKEND_KEY, None)
        try:
            if self.internal_error and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
            if not run.tests and not self.internal_error:
                return
            interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
            if judge_run(self.config, run, None if interrupted else backend) \
                    and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        finally:
            _stop(self.config, backend)
        run.finished = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        run.interrupted = exitstatus == pytest.ExitCode.INTERRUPTED or self.internal_error
        run.traffic = traffic(self.spans)
        run.write()
        baseline = options_of(self.config).baseline
        if baseline:
            self._compare(session, baseline, run.as_dict())

    def _compare(self, session: pytest.Session, baseline: str, current: dict[str, Any]) -> None:
        from logprobe.report.diff import diff_runs
        from logprobe.report.matrix import load_run

        try:
            result = diff_runs(load_run(baseline), current)
        except ValueError as exc:
            raise pytest.UsageError(f"--baseline: {exc}") from exc
        self.config.stash[BASELINE_DIFF_KEY] = result.render(baseline, "this run")
        if result.must_regressed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _stop(config: pytest.Config, backend: Backend | None) -> None:
    """Stop what this process opened, and remove the folder its workers shared."""
    if backend is not None:
        backend.stop()
    share_dir = config.stash.get(SHARE_DIR_KEY, None)
    if share_dir is not None:
        shutil.rmtree(share_dir, ignore_errors=True)


def _junit_properties(config: pytest.Config, backend: dict[str, Any]) -> None:
    """The backend's identity as <properties> of pytest's own --junitxml report."""
    try:
        from _pytest.junitxml import xml_key
    except ImportError:  # pytest moved it: the JUnit file just lacks the properties
        return
    xml = config.stash.get(xml_key, None)
    if xml is None or not backend:
        return
    for name in ("name", "base_url", "model", "server_version", "booted", "faults"):
        value = backend.get(name)
        if value:
            xml.add_global_property(f"logprobe.backend.{name}",
                                    ",".join(value) if isinstance(value, list) else str(value))


def traffic(spans: list[list[float]]) -> dict[str, Any]:
    """What the run asked of the server: requests, tokens, and time spent waiting on it."""
    return {"requests": len(spans), "prompt_tokens": int(sum(s[2] for s in spans)),
            "completion_tokens": int(sum(s[3] for s in spans)),
            "seconds_in_requests": round(sum(s[1] for s in spans), 2),
            "seconds_with_a_request_in_flight": round(_busy(spans), 2)}


def _busy(spans: list[list[float]]) -> float:
    """The union of the exchanges' time intervals: concurrent requests count once."""
    intervals = sorted((s[0], s[0] + s[1]) for s in spans if s[0])
    total, end = 0.0, float("-inf")
    for start, stop in intervals:
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total
