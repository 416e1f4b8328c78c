"""A pytest plugin that prints when each test ran on which xdist worker.

    python -m pytest suites -n 4 --dist loadgroup -p bench.timeline [--endpoint URL ...]

How the core suite's critical path was found: at the end it prints, per
worker, the first start and last end (seconds since the controller started)
and every test that took longer than 0.7 s. Workers report their spans on
their test reports, so the controller alone prints.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import pytest

STARTED = time.time()
SLOW_S = 0.7
_spans: dict[str, list[tuple[float, float, str]]] = defaultdict(list)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Any) -> Any:
    item.stash[_START] = time.time()
    return (yield)


_START = pytest.StashKey[float]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    report = yield
    if report.when == "teardown":
        report.timeline_span = [item.stash[_START], time.time()]  # wall clock, machine-wide
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    span = getattr(report, "timeline_span", None)
    if span is not None:
        worker = getattr(report, "node", None)
        name = getattr(getattr(worker, "gateway", None), "id", "main")
        _spans[name].append((span[0] - STARTED, span[1] - STARTED, report.nodeid))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _spans:
        return
    terminalreporter.section("timeline (s since start)")
    for worker, spans in sorted(_spans.items()):
        spans.sort()
        terminalreporter.write_line(f"{worker}: first {spans[0][0]:.1f}, last {spans[-1][1]:.1f}, "
                                    f"{len(spans)} tests")
        for start, end, nodeid in spans:
            if end - start > SLOW_S:
                terminalreporter.write_line(f"  {start:5.1f}-{end:5.1f}  {nodeid}")
