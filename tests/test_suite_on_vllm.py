"""The suite against the embedded vLLM: directly, through the transparent proxy, and
through every fault of the proxy (the kill matrix)."""

from __future__ import annotations

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
