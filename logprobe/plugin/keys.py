"""Where the plugin's modules keep what they share: pytest stash keys, and the keys of what
the xdist controller hands to its workers. One place, so no module reaches into another's
privates for them."""

from __future__ import annotations

from pathlib import Path

import pytest

from logprobe.backend import Backend
from logprobe.client import RecordingClient
from logprobe.expectations import Expectation, ExpectationSet
from logprobe.judge import ConformanceFailure, Judgement
from logprobe.liveness import Watch
from logprobe.report.run import RunReport

JUDGEMENT_KEY = pytest.StashKey[Judgement]()
EXPECTATION_KEY = pytest.StashKey[Expectation]()
REPORT_KEY = pytest.StashKey[RunReport]()
EXPECTATIONS_KEY = pytest.StashKey[ExpectationSet]()
CLIENT_KEY = pytest.StashKey[RecordingClient]()
BACKEND_KEY = pytest.StashKey[Backend]()
TRAFFIC_CURSOR_KEY = pytest.StashKey[int]()
BASELINE_DIFF_KEY = pytest.StashKey[str]()
SHARE_DIR_KEY = pytest.StashKey[Path]()
WATCH_KEY = pytest.StashKey[Watch]()
FAILURES_KEY = pytest.StashKey[list[tuple[ConformanceFailure, Judgement]]]()
# Set by a test tree that judges no server (the project's own tests, run under xdist): its
# xdist controller then opens no backend, which it would otherwise boot before any worker
# has collected a test.
JUDGES_NO_SERVER_KEY = pytest.StashKey[bool]()
WORKER_BACKEND = "logprobe_backend"  # key of the backend's description in xdist's workerinput
WORKER_SHARE_DIR = "logprobe_share_dir"  # where workers leave the exchanges they share
