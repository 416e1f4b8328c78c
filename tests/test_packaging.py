"""The package as users get it: the wheel installed in a fresh venv outside the checkout
runs the packaged suites against a server, from an empty folder, with options in any order
and path options in either spelling."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_the_wheel_runs_the_suite_from_an_empty_folder(served, tmp_path):
    dist, venv, empty = tmp_path / "dist", tmp_path / "venv", tmp_path / "empty"
    empty.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist),
                    str(ROOT)], check=True, capture_output=True, timeout=600)
    [wheel] = dist.glob("logprobe-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                    str(wheel)], check=True, capture_output=True, timeout=900)
    command = [str(venv / "bin" / "logprobe"), "run", "-q", "--endpoint", served.base_url,
               "-k", "lmeval_request", "--report-dir", str(empty / "out")]
    if served.tokenizer:
        command += ["--tokenizer", served.tokenizer]  # a folder, given as its own argument
    done = subprocess.run(command, cwd=empty, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    run = json.loads((empty / "out" / "run.json").read_text())
    assert run["tests"] and {t["verdict"] for t in run["tests"]} == {"PASS"}
    assert "/_data/fixtures/expectations/vllm.yaml" in run["backend"]["expectations"]["file"]
    assert not (Path(empty) / "tests").exists()
