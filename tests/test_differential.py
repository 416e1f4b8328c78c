"""--reference-endpoint against the embedded vLLM: the server through the transparent
proxy against itself differs in nothing; through a fault, the differences are named."""

from __future__ import annotations

import json

from conftest import Served, run_suite

SELECTION = ("-k", "test_shape or test_echo or test_values or test_counts")


def _run_row(run) -> dict:
    [row] = [t for t in run.report["tests"] if t["nodeid"] == "logprobe::run::differential"]
    return row


def test_the_server_against_itself_differs_in_nothing(served: Served, tmp_path):
    run = run_suite(served, tmp_path, "--fault=none", f"--reference-endpoint={served.base_url}",
                    *SELECTION)
    assert run.returncode == 0, run.output[-3000:]
    fields = _run_row(run)["data"]["differential"]
    assert fields["token_logprobs"]["n"] > 100 and fields["top_logprobs"]["n"] > 100
    assert all(seen["differ"] == 0 for seen in fields.values()), fields
    assert not [f for f in run.findings() if f["invariant"] == "DIFF-001"]


def test_a_fault_is_named_with_both_curls(served: Served, tmp_path):
    run = run_suite(served, tmp_path, "--fault=echo-offset",
                    f"--reference-endpoint={served.base_url}",
                    "--reference-api-key=sk-reference-secret", *SELECTION)
    fields = _run_row(run)["data"]["differential"]
    assert fields["token_logprobs"]["differ"] > 0
    assert abs(fields["token_logprobs"]["deltas"][0] - 0.05) < 1e-3  # the fault's offset
    assert fields["text"]["differ"] == 0  # the fault moves values, not text
    named = [f["message"] for f in run.findings() if f["invariant"] == "DIFF-001"]
    assert named and all("this server: curl" in m and "reference:   curl" in m for m in named)
    assert any("token_logprobs" in m for m in named)
    summary = [f["message"] for f in run.findings() if f["invariant"] == "DIFF-002"]
    assert summary and "token_logprobs:" in summary[0], summary
    assert "sk-reference-secret" not in json.dumps(run.report) + run.output
