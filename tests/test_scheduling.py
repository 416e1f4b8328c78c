"""The suite's xdist scheduler: under ``--dist loadgroup`` the reference model's tests run
on one worker, which loads the model once (``suites/conftest.py``). Real pytest-xdist
workers, on a tree of tests that records where each ran; no server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CONFTEST = f"""
import sys
from importlib.machinery import SourceFileLoader

sys.path.insert(0, {str(ROOT / "suites")!r})
suite = SourceFileLoader("logprobe_suite_conftest", {str(ROOT / "suites" / "conftest.py")!r}).load_module()
{{hook}}
"""

RECORDING_TEST = """
import os
from pathlib import Path

import pytest

@pytest.mark.parametrize("n", range({count}))
def test_runs(n):
    Path({out!r}, f"{{__name__}}-{{n}}").write_text(os.environ["PYTEST_XDIST_WORKER"])
"""


def _workers(tmp_path: Path, hook: str) -> dict[str, set[str]]:
    tree, out = tmp_path / "tree", tmp_path / "out"
    tree.mkdir()
    out.mkdir()
    (tree / "conftest.py").write_text(CONFTEST.format(hook=hook))
    (tree / "test_oracle.py").write_text(RECORDING_TEST.format(count=3, out=str(out)))
    (tree / "test_other.py").write_text(RECORDING_TEST.format(count=9, out=str(out)))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "no:logprobe.plugin", "-n", "3", "--dist", "loadgroup", str(tree)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    ran: dict[str, set[str]] = {}
    for record in out.iterdir():
        ran.setdefault(record.name.rsplit("-", 1)[0], set()).add(record.read_text())
    return ran


def test_the_reference_model_tests_run_on_one_worker(tmp_path):
    ran = _workers(tmp_path, "pytest_xdist_make_scheduler = suite.pytest_xdist_make_scheduler")
    assert len(ran["test_oracle"]) == 1, ran
    assert len(ran["test_other"]) > 1, ran  # the rest is still spread


def test_without_the_scheduler_they_would_spread(tmp_path):
    """What the scheduler is for: xdist's own loadgroup deals them one by one."""
    ran = _workers(tmp_path, "")
    assert len(ran["test_oracle"]) > 1, ran


def test_the_suite_runs_without_xdist():
    """The scheduler is xdist's hook: with xdist switched off (``-p no:xdist``) pytest knows
    no such hook, and the suite's conftest must still load."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "-p",
                           "no:cacheprovider", "--collect-only", "-q", str(ROOT / "suites")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "tests collected" in done.stdout
