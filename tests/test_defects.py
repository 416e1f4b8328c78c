"""Failures and findings grouped by defect, and the terminal summary built from them.

Pure functions, judged on the committed baselines: real runs of the suite against
llama.cpp's server, llama-cpp-python, `transformers serve` and vLLM (docs/baselines,
provenance.yaml). Whether a live run's defects carry the right names is proved by the
kill matrix (tests/test_suite_on_vllm.py) and the booted llama-server
(tests/test_llama_server.py).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from logprobe import schemas
from logprobe.faults import FAULTS
from logprobe.invariants.core import FAILING
from logprobe.report.defects import FAILING_GRADES, as_records, group, kind_of
from logprobe.report.matrix import load_run
from logprobe.report.summary import summary_lines

BASELINES = Path(__file__).resolve().parents[1] / "docs" / "baselines"
ALL_BASELINES = sorted(p.stem for p in BASELINES.glob("*.json"))


def _baseline(name: str) -> dict[str, Any]:
    return load_run(BASELINES / f"{name}.json")


def test_a_kind_forgets_positions_and_numbers_only():
    assert kind_of("chunk 3: choices/2/logprobs: 'tokens' is a required property") == \
        kind_of("chunk 0: choices/0/logprobs: 'tokens' is a required property")
    assert kind_of("7 entries for 6 prompt tokens + 2 generated") == \
        "# entries for # prompt tokens + # generated"
    assert kind_of("top_logprobs must be [] when not asked for") != \
        kind_of("top_logprobs must be null when not asked for")


def test_llama_server_reads_as_a_handful_of_named_defects():
    """44 FAIL and 7 IGNORED tests (docs/baselines/llama-server.json) are six failing
    defects, the three largest named from the fault registry with where each was seen."""
    defects = group(_baseline("llama-server"))
    failing = [d for d in defects if d.grade in FAILING]
    assert len(failing) <= 6, [d.headline() for d in failing]
    assert [d.looks_like["fault"] for d in failing[:3] if d.looks_like] == \
        ["chat-shape-on-completions", "accept-invalid", "chat-top-unasked"]
    chat_shape = failing[0]
    assert len(chat_shape.tests) >= 30 and {"SHAPE-002", "STR-002"} <= set(chat_shape.invariants)
    assert chat_shape.reproducer.startswith("curl ") and "/v1/completions" in chat_shape.reproducer
    assert "lm-evaluation-harness#4158" in chat_shape.looks_like["seen_in"]


@pytest.mark.parametrize("name", ALL_BASELINES)
def test_grouping_loses_no_failing_test(name):
    run = _baseline(name)
    grouped = {t for d in group(run) if d.grade in FAILING_GRADES for t in d.tests}
    failing = {t["nodeid"] for t in run["tests"] if t["verdict"] in FAILING}
    assert failing <= grouped, sorted(failing - grouped)[:5]


@pytest.mark.parametrize("name", ALL_BASELINES)
def test_every_finding_is_in_a_group_of_its_invariant_and_test(name):
    run = _baseline(name)
    placed = {(i, t) for d in group(run) for i in d.invariants for t in d.tests}
    findings = {(f["invariant"], t["nodeid"]) for t in run["tests"] for f in t["findings"]}
    assert findings <= placed, sorted(findings - placed)[:5]


def test_a_reproducer_is_the_request_that_showed_the_defect():
    """A property test sends many requests; its row's first reproducer may be another's.
    Where the row says which exchange each violation came from, that one is named."""
    run = copy.deepcopy(_baseline("llama-server"))
    [row] = [t for t in run["tests"] if t["nodeid"].endswith("::test_generated_chat")]
    row["failures"] = [{"invariant": "CNT-003", "location": "choices[0]",
                        "message": "top_logprobs must be [] when not asked for",
                        "reproducer": "curl -sS http://x/v1/chat/completions -d '{\"logprobs\":true}'"}]
    [defect] = [d for d in group(run) if d.looks_like and d.looks_like["fault"] == "chat-top-unasked"]
    assert defect.tests[0] == row["nodeid"]
    assert defect.reproducer == row["failures"][0]["reproducer"]


def test_defects_follow_the_run_schema():
    run = _baseline("llama-server")
    run["defects"] = as_records(group(run))
    assert schemas.errors("run", run) == []
    run["defects"][0]["reproducer"] = "wget http://x"
    assert schemas.errors("run", run)


def test_the_embedded_vllm_summary_fits_one_screen():
    lines = [line for line, _ in summary_lines(_baseline("vllm"), "reports/run.json")]
    assert len(lines) <= 25, "\n".join(lines)
    assert lines[0].startswith("backend: vllm")
    assert sum(line.lstrip().startswith("INFO CONS-002") for line in lines) == 1


def test_a_dead_server_leads_the_summary_and_is_not_repeated():
    run = copy.deepcopy(_baseline("vllm"))
    run["tests"].append({"nodeid": "logprobe::run::server", "verdict": "FAIL",
                         "message": "[MUST SRV-001]: the server went down", "violated": ["SRV-001"],
                         "findings": [], "reproducers": []})
    lines = [line for line, _ in summary_lines(run)]
    assert lines[0].startswith("FAIL logprobe::run::server: [MUST SRV-001]")
    assert not any("SRV-001" in line for line in lines[1:])


def test_every_signature_names_an_invariant_its_fault_trips_or_shapes():
    """A signature is the message a fault's own run shows: its invariants are the ones the
    fault trips, or the schema and lm-eval checks its broken shape also fails."""
    for fault in FAULTS.values():
        for invariant, words in fault.looks:
            assert words and invariant in {*fault.trips, "SHAPE-005", "STR-002", "LMEVAL-001"}, \
                (fault.name, invariant)


def test_a_rows_failures_hold_each_violation_once_with_the_exchange_it_came_from():
    """The judge keeps a failing test's violations and raises them too; the row is built
    from both. Each MUST is one entry, with the curl of the exchange it was found in."""
    from logprobe.client import Exchange
    from logprobe.invariants.core import Violation
    from logprobe.invariants.shape import SHAPE_002
    from logprobe.judge import ConformanceFailure, Judge, Judgement
    from logprobe.plugin.rows import failure_rows

    first = Exchange("POST", "http://x/v1/completions", {"prompt": "first"})
    broken = Exchange("POST", "http://x/v1/completions", {"prompt": "second"})
    judgement = Judgement()
    judge = Judge(judgement)
    judge.record([first], [SHAPE_002], [])
    with pytest.raises(ConformanceFailure) as raised:
        judge.record([broken], [SHAPE_002], [Violation(SHAPE_002, "the chat logprobs shape")])
    rows = failure_rows(list(judgement.violations) + list(raised.value.violations), judgement)
    assert [(r["invariant"], r["message"]) for r in rows] == [("SHAPE-002",
                                                               "the chat logprobs shape")]
    assert '"second"' in rows[0]["reproducer"] and '"first"' not in rows[0]["reproducer"]
