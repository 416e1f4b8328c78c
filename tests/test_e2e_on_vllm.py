"""The e2e marker against the embedded vLLM: lm-eval's MMLU passes directly, and the two
defects it exists for fail it for the right reason."""

from __future__ import annotations

import re

from conftest import run_suite


def test_e2e_passes_on_the_embedded_vllm(served, tmp_path):
    run = run_suite(served, tmp_path, "-m", "e2e", "--mmlu-per-subject=1", "--log-cli-level=INFO",
                    timeout=1200)
    assert run.returncode == 0, run.output[-4000:]
    assert set(run.verdicts().values()) == {"PASS"}
    accuracy = [f["message"] for f in run.findings() if f["invariant"] == "LMEVAL-006"]
    assert accuracy and "57/57 answers agree" in accuracy[0], accuracy
    # its progress, live: lm-eval's requests counted as they are answered, to the last one
    steps = re.findall(r"e2e: lm-eval requests answered: (\d+)/(\d+)", run.output)
    assert steps and steps[-1][0] == steps[-1][1] == str(57 * 4), steps


def test_null_logprobs_names_the_typeerror_lm_eval_raised(served, tmp_path):
    run = run_suite(served, tmp_path, "-m", "e2e", "-k", "loglikelihood", "--mmlu-subjects=3",
                    "--fault=null-logprobs", timeout=600)
    assert run.returncode == 1, run.output[-3000:]
    row = run.report["tests"][0]
    assert "LMEVAL-004" in row["violated"]
    assert "lm-eval raised TypeError: 'NoneType' object is not subscriptable" in row["message"]
    assert "choices[0].logprobs is null" in row["message"]  # the response that caused it


def test_ignored_echo_fails_on_answer_agreement(served, tmp_path):
    run = run_suite(served, tmp_path, "-m", "e2e", "-k", "loglikelihood", "--mmlu-subjects=3",
                    "--fault=echo-ignored", timeout=600)
    assert run.returncode == 1, run.output[-3000:]
    row = run.report["tests"][0]
    assert "LMEVAL-004" not in row["violated"], "lm-eval itself raises nothing here"
    assert "LMEVAL-005" in row["violated"], row["message"][-2000:]


def test_a_tokenizer_lm_eval_cannot_load_is_a_harness_error_not_a_verdict(served, tmp_path):
    """Without --tokenizer lm-eval looks the model's name up on the hub, which it cannot
    reach here: its OSError happens before any request, so it is the suite's environment
    failing (an ERROR that says to pass --tokenizer), not LMEVAL-004 against the server."""
    import dataclasses

    run = run_suite(dataclasses.replace(served, tokenizer=None), tmp_path, "-m", "e2e", "-k",
                    "loglikelihood", "--mmlu-subjects=1", timeout=600)
    assert run.returncode == 1, run.output[-3000:]
    [row] = run.report["tests"]
    assert row["verdict"] == "ERROR" and row["harness_error"] is True, row
    assert "LMEVAL-004" not in row["violated"]
    assert "pass --tokenizer" in row["message"]
    assert "harness errors" in run.output
