"""Hostile or broken servers get a graded verdict and a clear message, in bounded time and
memory, and the run goes on to its end: the suite must never be the thing that breaks."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from hostile import MODES, hostile_server

from conftest import ROOT, Served, run_suite

SELECTION = "test_completions_logprobs_shape or test_completions_stream_matches"
OBSERVED: dict[str, dict[str, object]] = {}


@pytest.mark.parametrize("mode", MODES)
def test_hostile_server_gets_a_verdict(mode: str, tmp_path: Path):
    with hostile_server(mode) as url:
        started = time.monotonic()
        run = run_suite(Served(url, None), tmp_path, "--request-timeout=3", "-k", SELECTION,
                        timeout=300)
        seconds = time.monotonic() - started
    assert run.returncode == 1, run.output[-3000:]  # tests failed; the suite did not crash
    assert "Traceback" not in run.output and "INTERNALERROR" not in run.output
    verdicts = run.verdicts()
    assert len(verdicts) == 2, "every selected test must be reported"
    # sse-no-done answers non-streamed requests correctly: only its stream is broken.
    judged = {k: v for k, v in verdicts.items() if mode != "sse-no-done" or "stream" in k}
    assert set(judged.values()) <= {"ERROR", "FAIL", "IGNORED"}, verdicts
    messages = [t["message"].splitlines()[1] for t in run.report["tests"] if t["verdict"] != "PASS"]
    assert all(messages)
    OBSERVED[mode] = {"verdicts": sorted(set(verdicts.values())), "seconds": round(seconds, 1),
                      "message": messages[0][:160]}
    out = Path(os.environ.get("LOGPROBE_REPORT_DIR", ROOT / "reports")) / "hostile-servers.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(OBSERVED, indent=1, sort_keys=True))


def test_a_429_is_retried_and_the_retry_recorded(tmp_path: Path):
    with hostile_server("busy-once") as url:
        run = run_suite(Served(url, None), tmp_path, "-k", "test_completions_logprobs_shape")
    row = run.report["tests"][0]
    assert row["verdict"] == "PASS", row["message"]
    assert row["retries"] == 1
    assert row["exchanges"][0]["retries"] == ["HTTP 429"]
    assert [f["invariant"] for f in row["findings"]] == ["ERR-006"]


def test_a_body_cut_off_and_then_retried_is_still_reported(tmp_path: Path):
    """A retry must not turn a broken answer into a clean PASS: the first failure stays a
    SHOULD finding (ERR-006), in run.json and in the terminal summary."""
    with hostile_server("cut-once") as url:
        run = run_suite(Served(url, None), tmp_path, "-k", "test_completions_logprobs_shape")
    row = run.report["tests"][0]
    assert row["verdict"] == "PASS", row["message"]
    [attempt] = row["exchanges"][0]["retries"]
    assert attempt.startswith("HTTP 200, then RemoteProtocolError") and "cut off" in attempt
    [finding] = row["findings"]
    assert finding["invariant"] == "ERR-006" and finding["level"] == "SHOULD"
    assert "SHOULD ERR-006 (1 test): 1 failed attempt(s) before this answer" in run.output


def test_a_server_that_stays_overloaded_is_an_error_after_the_retries(tmp_path: Path):
    with hostile_server("always-503") as url:
        run = run_suite(Served(url, None), tmp_path, "--retries=2", "-k",
                        "test_completions_logprobs_shape")
    row = run.report["tests"][0]
    assert row["verdict"] == "ERROR" and "HTTP 503" in row["message"]
    assert row["exchanges"][0]["retries"] == ["HTTP 503", "HTTP 503"]
