"""``logprobe doctor`` against the embedded vLLM, directly and through faults of the proxy:
it names the server and its limit, and says when lm-eval's request is broken and how."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, Served
from logprobe.endpoint import EXIT_ENDPOINT_UNUSABLE
from logprobe.launch.process import free_port
from logprobe.proxy import proxy_process


def _doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "logprobe.cli", "doctor", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False, env=env)


def _lines(out: str) -> dict[str, str]:
    return {line.split()[0]: line.split(None, 1)[1] for line in out.splitlines()[1:]}


def test_doctor_on_the_plain_server(served: Served):
    args = ["--endpoint", served.base_url]
    if served.tokenizer:
        args += ["--tokenizer", served.tokenizer]
    done = _doctor(*args)
    assert done.returncode == 0, done.stderr
    seen = _lines(done.stdout)
    assert seen["server"].startswith("vllm, 0.32.0")
    assert seen["echo"].startswith("works: ") and seen["lm-eval"] == "parses this response"
    assert "vllm.yaml" in seen["expectations"] and "entries apply" in seen["expectations"]
    assert seen["logprobs"].startswith("serves 20")
    if served.tokenizer:
        assert "(loads, 49152 tokens)" in seen["tokenizer"]


@pytest.mark.parametrize("fault,line,words", [
    ("null-logprobs", "lm-eval", "would raise TypeError: 'NoneType' object is not subscriptable"),
    ("echo-ignored", "echo", "BROKEN"),
    ("logprobs-cap-5", "logprobs", "5 (the server refused 20"),
])
def test_doctor_names_what_a_fault_broke(fault: str, line: str, words: str, served: Served,
                                         tmp_path: Path):
    process, url = proxy_process(served.base_url, tmp_path, faults=fault)
    with process:
        done = _doctor("--endpoint", url, "--api-key", "sk-doctor-secret")
    assert done.returncode == 0, done.stderr
    assert words in _lines(done.stdout)[line], done.stdout
    assert "sk-doctor-secret" not in done.stdout + done.stderr


def test_doctor_on_nothing_listening():
    done = _doctor("--endpoint", f"http://127.0.0.1:{free_port()}")
    assert done.returncode == EXIT_ENDPOINT_UNUSABLE
    assert "cannot connect" in done.stderr and done.stdout == ""
