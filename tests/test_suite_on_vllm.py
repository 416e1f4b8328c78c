"""The suite against the embedded vLLM: directly, through the transparent proxy, and
through every fault of the proxy (the kill matrix)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import KILL_MATRIX, run_suite
from logprobe.faults import FAULTS


def test_embedded_vllm_passes_every_must(direct_run):
    assert direct_run.returncode == 0, direct_run.output[-4000:]
    verdicts = direct_run.verdicts()
    assert len(verdicts) >= 50
    assert set(verdicts.values()) == {"PASS"}, {k: v for k, v in verdicts.items() if v != "PASS"}


def test_report_names_the_backend(direct_run):
    backend = direct_run.report["backend"]
    assert backend["model"] == "smollm2"
    assert backend["server_version"] == "0.32.0"
    assert direct_run.report["suite"]["name"] == "logprobe"
    row = direct_run.report["tests"][0]
    assert {"nodeid", "invariants", "level", "verdict", "reproducers"} <= set(row)


def test_transparent_proxy_changes_no_verdict(served, direct_run, tmp_path):
    proxied = run_suite(served, tmp_path, "--fault=none")  # the proxy, with no fault
    assert proxied.returncode == 0, proxied.output[-3000:]
    assert proxied.report["backend"]["base_url"] != direct_run.report["backend"]["base_url"]
    assert proxied.verdicts() == direct_run.verdicts()


@pytest.mark.parametrize("name", list(FAULTS))
def test_fault_is_caught_by_its_invariants(name, served, tmp_path):
    fault = FAULTS[name]
    run = run_suite(served, tmp_path, f"--fault={name}", "--hypothesis-profile=quick")
    violated = run.violated()
    finding_ids = {f["invariant"] for f in run.findings()}
    caught = set(fault.trips) <= (violated | finding_ids)
    by_properties = sorted({i for t in run.report.get("tests", []) if "test_generated" in t["nodeid"]
                            for i in t.get("violated", [])})
    KILL_MATRIX[name] = {"targets": list(fault.trips), "violated": sorted(violated),
                         "returncode": run.returncode, "fatal": fault.fatal,
                         "caught": caught and (run.returncode != 0) == fault.fatal,
                         "caught_by_properties": by_properties, "in_property_space": fault.properties}
    if fault.properties:
        assert by_properties, f"{name} is in the property suite's request space but the " \
            "property tests alone did not catch it"
    if fault.fatal:
        assert run.returncode == 1, run.output[-3000:]
        assert set(fault.trips) <= violated, (
            f"{name} should trip {fault.trips}; the run reported {sorted(violated)}")
    else:
        assert run.returncode == 0, f"{name} must not fail the run:\n{run.output[-3000:]}"
        modes = [f["message"] for f in run.findings() if f["invariant"] == "SMP-003"]
        assert any("processed" in m for m in modes), modes


def test_command_launcher_boots_any_server(served, tmp_path):
    """--serve command with a real OpenAI-compatible server: our proxy in front of vLLM,
    started from a command line with {port}, torn down at the end."""
    import json
    import subprocess
    import sys

    from conftest import ROOT

    command = f"{sys.executable} -m logprobe.cli proxy --upstream {served.base_url} --port {{port}}"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "suites" / "test_shape.py"), "-q",
         "--serve=command", f"--serve-command={command}", f"--report-dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    report = json.loads((tmp_path / "run.json").read_text())
    assert report["backend"]["booted"] == "command"
    assert set(report["summary"]) == {"PASS"}
    pid = report["backend"]["server_pid"]
    assert not Path(f"/proc/{pid}").exists(), "the command's server outlived the run"


def test_a_stale_expectation_is_reported_as_xpass(served, tmp_path):
    """An expectation naming a test that passes fails the run, and run.json says XPASS."""
    import dataclasses

    stale = tmp_path / "stale.yaml"
    stale.write_text("expectations:\n"
                     "  - test: suites/test_shape.py::test_completions_logprobs_shape\n"
                     "    expected: FAIL\n    reason: a deliberately stale entry\n"
                     "    evidence: this test\n")
    run = run_suite(dataclasses.replace(served, expectations=stale), tmp_path / "run",
                    "-k", "test_completions_logprobs_shape")
    assert run.returncode == 1, run.output[-2000:]
    assert run.verdicts() == {"suites/test_shape.py::test_completions_logprobs_shape": "XPASS"}
