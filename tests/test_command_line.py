"""The documented command lines work in both spellings of an option that takes a path.

pytest decides its rootdir and ini file before any plugin adds its options
(pytest-dev/pytest#8846), so the value of ``--tokenizer /abs/dir`` was taken for a test
path: the project's ini file went unfound, pytest collected tests/ beside suites/, and
collection broke on the wrong conftest. ``--opt=VALUE`` never had the problem.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, Served


@pytest.mark.parametrize("spelling", ["separate", "joined"])
def test_path_options_from_the_repo_root(spelling: str, served: Served, tmp_path: Path):
    if not served.tokenizer:
        pytest.skip("the server has no local tokenizer folder")
    report_dir = tmp_path / "out"
    report_dir.mkdir()  # an existing folder, as the tokenizer's: both look like test paths
    paths = {"--tokenizer": served.tokenizer, "--report-dir": str(report_dir)}
    options = [part for name, value in paths.items()
               for part in ([name, value] if spelling == "separate" else [f"{name}={value}"])]
    done = subprocess.run([sys.executable, "-m", "pytest", f"--endpoint={served.base_url}",
                           *options, "-k", "test_lmeval_request_token_ids", "-q"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    rows = json.loads((report_dir / "run.json").read_text())["tests"]
    assert [r["nodeid"] for r in rows] == ["suites/test_lmeval.py::test_lmeval_request_token_ids"]
    assert rows[0]["verdict"] == "PASS"
