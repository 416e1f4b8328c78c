"""The run report: ``run.json``, written atomically after every test.

Writing after each test (to a temporary file, then ``os.replace``) means an
interrupted or crashed run still leaves a valid JSON report of what it saw.
"""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logprobe import __version__
from logprobe.report.matrix import declared

REPORT_FORMAT = 1
WRITE_EVERY_S = 1.0  # the most often a growing run.json is rewritten mid-run


@dataclass
class TestRow:
    nodeid: str
    invariants: list[str]
    level: str | None
    verdict: str
    message: str = ""
    violated: list[str] = field(default_factory=list)  # ids of the MUST violations
    # each MUST violation: invariant, location, message (grouped by defect in "defects")
    failures: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    # invariants the test touched but had nothing to judge (never counted as passing)
    unjudged: list[dict[str, str]] = field(default_factory=list)
    reproducers: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    retries: int = 0  # retried attempts (429, 503, failed connections) across the exchanges
    exchanges: list[dict[str, Any]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # measurements a report may draw
    # the suite's own environment failed (a tokenizer, a data set, an extra): not the server
    harness_error: bool = False


@dataclass
class RunReport:
    backend: dict[str, Any] = field(default_factory=dict)
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    finished: str | None = None
    tests: list[TestRow] = field(default_factory=list)
    interrupted: bool = False
    traffic: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    secrets: tuple[str, ...] = ()
    _written_at: float = field(default=-math.inf, repr=False)

    def add(self, row: TestRow) -> None:
        """Keep a row; run.json is rewritten with it unless it was written less than
        ``WRITE_EVERY_S`` ago (every write regroups every row's defects: a write per row
        grew with the run, 0.6 s of the controller's time over 99 rows). The run's end
        writes it whole; a run killed outright loses at most that last second."""
        self.tests.append(row)
        if time.monotonic() - self._written_at >= WRITE_EVERY_S:
            self.write()

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.tests:
            counts[row.verdict] = counts.get(row.verdict, 0) + 1
        return counts

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "suite": {"name": "logprobe", "version": __version__},
            "machine": {"python": platform.python_version(), "platform": platform.platform()},
            "backend": self.backend,
            "started": self.started,
            "finished": self.finished,
            "interrupted": self.interrupted,
            "summary": self.summary(),
            "traffic": self.traffic,
            "invariants": {i: {"level": inv.level.value, "statement": inv.statement,
                               "source": inv.source} for i, inv in sorted(declared().items())},
            "tests": [row.__dict__ for row in self.tests],
            "defects": self.defects(),
        }

    def defects(self) -> list[dict[str, Any]]:
        """The rows' failures and findings grouped by defect (``logprobe.report.defects``)."""
        from logprobe.report.defects import as_records, group

        return as_records(group({"tests": [row.__dict__ for row in self.tests]}))

    def write(self) -> None:
        if self.path is None:
            return
        text = json.dumps(self.as_dict(), indent=1, ensure_ascii=False, default=str)
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "$OPENAI_API_KEY")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=".run-", suffix=".json", dir=self.path.parent)
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(tmp, self.path)
        self._written_at = time.monotonic()
