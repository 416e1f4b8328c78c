"""The suite booting its own server (no --endpoint), as the README's first command does:
a server killed mid-run, and a run interrupted, lose nothing and leave no process behind,
in one process and with pytest-xdist workers (the controller boots, workers watch the pid)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT


def _start_suite(report_dir: Path, workers: int = 0) -> subprocess.Popen[str]:
    """The suite in its own process group, so that its workers can be looked for afterwards."""
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", str(ROOT / "suites"), "-q", "-p", "no:randomly",
         f"-n={workers}", f"--report-dir={report_dir}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )


def _wait_for_tests(report_dir: Path, count: int, suite: subprocess.Popen[str]) -> dict:
    path = report_dir / "run.json"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if suite.poll() is not None:
            pytest.fail(f"the suite ended early:\n{suite.stdout.read()[-3000:]}")
        if path.exists():
            report = json.loads(path.read_text())
            if len(report.get("tests", [])) >= count:
                return report
        time.sleep(0.5)
    pytest.fail("the suite did not get going within 600 s")


def _group_gone(pgid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def test_server_killed_mid_run_under_xdist(tmp_path: Path):
    suite = _start_suite(tmp_path, workers=2)
    report = _wait_for_tests(tmp_path, 5, suite)
    pid = report["backend"]["server_pid"]
    os.killpg(pid, signal.SIGKILL)
    output, _ = suite.communicate(timeout=600)
    assert suite.returncode == 1, output[-3000:]
    final = json.loads((tmp_path / "run.json").read_text())  # still valid JSON
    after = final["tests"][len(report["tests"]) + 1:]
    assert after, "tests after the kill must be reported"
    assert all(t["verdict"] == "ERROR" for t in after), [t["verdict"] for t in after]
    assert any("died" in t["message"] for t in after)
    assert _group_gone(pid, within=15)
    assert _group_gone(suite.pid, within=15), "xdist workers outlived the run"


@pytest.mark.parametrize(("signum", "workers"), [(signal.SIGINT, 0), (signal.SIGTERM, 2)],
                         ids=["SIGINT", "SIGTERM-xdist"])
def test_interrupted_run_tears_the_server_down(signum: int, workers: int, tmp_path: Path):
    suite = _start_suite(tmp_path, workers)
    report = _wait_for_tests(tmp_path, 3, suite)
    pid = report["backend"]["server_pid"]
    suite.send_signal(signum)
    suite.communicate(timeout=60)
    assert _group_gone(pid, within=15), "the server's process group outlived the interrupted run"
    assert _group_gone(suite.pid, within=15), "the suite's workers outlived the interrupted run"
    final = json.loads((tmp_path / "run.json").read_text())
    assert len(final["tests"]) >= 3
    if signum == signal.SIGINT:
        assert final["interrupted"] is True
