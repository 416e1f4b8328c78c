"""The suite against the embedded vLLM: directly, through the transparent proxy, and
through every fault of the proxy (the kill matrix)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from conftest import KILL_MATRIX, run_suite
from logprobe.faults import FAULTS
from logprobe.invariants.catalogue import checks_for  # noqa: F401  (loads the registry)
from logprobe.invariants.core import REGISTRY
from logprobe.invariants.numerics import RUN_NODEID
from logprobe.strategies import pinned_shapes

# What the property suite (generated requests and pinned shapes) judges: the registered
# exchange checks' invariants, those of the invalid request shapes, a greedy echo sent
# again alone (CONS-001), a sampled n > 1 request's choices echoed again (CONS-003), a 5xx
# to any of them (ERR-004, the judge's transport classification) and, the tokenizer known
# (as in these runs), the tokens' spelling (TXT-006).
PROPERTY_INVARIANTS = {i.id for r in REGISTRY.values() if r.when is not None
                       for i in r.invariants} | \
    {inv for _, _, inv in pinned_shapes("m", 20).values() if inv is not None} | \
    {"CONS-001", "CONS-003", "ERR-004", "TXT-006"}


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


def judging(report: dict, fault) -> list[str] | None:
    """The test functions that judge what ``fault`` must trip, on the plain server (and
    every property test, for a fault in the property space); None for the whole suite: a
    fault that must not fail the run (nothing else may fail either), one that kills the
    server, or one whose invariants only a run-level row judges (NUM, CONS-005, SRV)."""
    rows = [t for t in report["tests"] if not t["nodeid"].startswith("logprobe::")]
    touched = {i for t in rows for i in t["invariants"]}
    if not fault.fatal or fault.dies or not set(fault.trips) <= touched:
        return None
    chosen = {t["nodeid"].split("[")[0] for t in rows
              if set(t["invariants"]) & set(fault.trips)
              or (fault.properties and "test_properties.py" in t["nodeid"])}
    return sorted(chosen)


# The invariants only the reference oracle judges (a local float32 run of the served model).
ORACLE_JUDGED = {"ORACLE-001", "RESP-007"}


@pytest.mark.parametrize("name", list(FAULTS))
def test_fault_is_caught_by_its_invariants(name, served, direct_run, tmp_path):
    fault = FAULTS[name]
    # The oracle (11 s of model loading a run) judges the faults it must catch, and the
    # non-fatal ones, which it must not fail; the rest are caught without it.
    oracle = not fault.fatal or bool(set(fault.trips) & ORACLE_JUDGED)
    # Three workers, as the conformance command runs the suite: a third of a run's time.
    # A fatal fault is judged by the tests that judge its invariants on the plain server
    # (the plain server passing every test is test_embedded_vllm_passes_every_must's).
    run = run_suite(served, tmp_path, f"--fault={name}", "--hypothesis-profile=quick",
                    "-n", "3", "--dist", "loadgroup", oracle=oracle,
                    select=judging(direct_run.report, fault))
    violated = run.violated()
    finding_ids = {f["invariant"] for f in run.findings()}
    caught = set(fault.trips) <= (violated | finding_ids)
    by_properties = sorted({i for t in run.report.get("tests", [])
                            if "test_properties.py" in t["nodeid"] for i in t.get("violated", [])})
    KILL_MATRIX[name] = {"targets": list(fault.trips), "violated": sorted(violated),
                         "returncode": run.returncode, "fatal": fault.fatal,
                         "caught": caught and (run.returncode != 0) == fault.fatal,
                         "caught_by_properties": by_properties, "in_property_space": fault.properties}
    if fault.properties:
        targets = set(fault.trips) & PROPERTY_INVARIANTS
        assert targets, f"{name} is declared in the property space but trips none of its invariants"
        assert targets <= set(by_properties), (
            f"{name}: the property tests alone should violate {sorted(targets)}; "
            f"they violated {by_properties}")
    if fault.fatal:
        assert run.returncode == 1, run.output[-3000:]
        assert set(fault.trips) <= violated, (
            f"{name} should trip {fault.trips}; the run reported {sorted(violated)}")
    else:
        assert run.returncode == 0, f"{name} must not fail the run:\n{run.output[-3000:]}"
        assert fault.shows is not None, f"{name}: a non-fatal fault names what shows it"
        invariant, words = fault.shows
        seen = [f["message"] for f in run.findings() if f["invariant"] == invariant]
        assert any(words in m for m in seen), seen
    if fault.looks:  # the run's report names it as the known defect, with where it was seen
        named = {d["looks_like"]["fault"] for d in run.report["defects"] if d["looks_like"]}
        assert name in named, [d["example"] for d in run.report["defects"][:8]]
        assert f"looks like: {name}, seen in" in run.output
    if name == "dies-on-seed-beyond-int64":  # the suite started the proxy: it narrows
        assert_death_named(run, narrowed=True)
        # told as it happened, not only at the end: the death, then the replay
        told = [line for line in run.output.splitlines() if line.startswith("logprobe: ")]
        assert any(line.startswith("logprobe: the server is down (") for line in told), told
        assert any("replaying the" in line for line in told), told
    if name == "batch-noise":  # the noise reached the comparisons, and the run passed
        [row] = [t for t in run.report["tests"] if t["nodeid"] == "logprobe::run::consistency"]
        assert row["data"]["drift"]["max"] > 0.005 and row["data"]["drift"]["median"] == 0, row
    if name == "gpu-numerics":  # the drift was there, and large, and the run passed
        [row] = [t for t in run.report["tests"] if t["nodeid"] == RUN_NODEID]
        assert row["verdict"] == "PASS" and row["data"]["drift"]["max"] > 0.05, row


def test_no_logprobs_is_never_a_repeatable_pass_and_a_flat_refusal_is_one_error(served,
                                                                                 tmp_path):
    """Five answers that all carry "logprobs": null are IGNORED, not repeatable (LMDeploy's
    run showed a PASS); a max_tokens 0 refused with a flat 400 is an ERROR in the echo test as
    it is in the properties (it was a PASS there and an ERROR here)."""
    nulls = run_suite(served, tmp_path / "nulls", "--fault=null-logprobs", "-k",
                      "test_identical_requests_repeat", oracle=False)
    [repeat] = nulls.report["tests"]
    assert repeat["verdict"] == "IGNORED" and "SHAPE-002" in repeat["violated"], repeat
    flat = run_suite(served, tmp_path / "flat", "--fault=max-tokens-zero-flat-400", "-k",
                     "test_echo_max_tokens_zero or test_pinned_request_shape", oracle=False)
    verdicts = {t["nodeid"].split("::")[1]: t for t in flat.report["tests"]}
    zero = verdicts["test_echo_max_tokens_zero"]
    assert zero["verdict"] == "ERROR" and zero["violated"] == ["ERR-004"], zero
    assert "without an OpenAI error object" in zero["message"]


def test_a_clean_refusal_of_max_tokens_zero_judges_nothing(served, tmp_path):
    """The same refusal with an OpenAI error object is the server's stated limit: recorded,
    and ECHO-003 had nothing to judge (N/A), as the properties record it."""
    refused = run_suite(served, tmp_path, "--fault=max-tokens-zero-refused", "-k",
                        "test_echo_max_tokens_zero", oracle=False)
    [zero] = refused.report["tests"]
    assert zero["verdict"] == "N/A", zero
    assert any(f["invariant"] == "ERR-007" for f in zero["findings"]), zero


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


def test_stock_vllm_passes_with_its_known_deviations_applied(served, tmp_path):
    """`pytest --endpoint URL` with no other option: the server names itself (GET /version,
    owned_by "vllm"), its expectation file applies, and its known deviation (n > 1 refused at
    temperature 0) is EXPECTED, not a failure; the generated requests pass too."""
    import dataclasses

    run = run_suite(dataclasses.replace(served, expectations=None), tmp_path, "-k",
                    "test_generated or test_n_choices_at_temperature_zero")
    assert run.returncode == 0, run.output[-3000:]
    chosen = run.report["backend"]["expectations"]
    assert chosen["file"].endswith("vllm.yaml") and "owned_by 'vllm'" in chosen["why"], chosen
    assert chosen["applied"] == chosen["entries"] > 0
    assert "EXPECTED" in {f["level"] for f in run.findings()}
    assert "expectations: " in run.output and "vllm.yaml" in run.output


def test_expectations_none_judges_raw(served, tmp_path):
    import dataclasses

    raw = dataclasses.replace(served, expectations=None)
    run = run_suite(raw, tmp_path, "--expectations=none", "-k",
                    "test_n_choices_at_temperature_zero")
    assert run.returncode == 1, run.output[-3000:]
    assert "ERR-004" in run.violated()


EXPECT_ONE = """expectations:
  - test: suites/test_lmeval.py::test_lmeval_request_batch_text
    expected: {verdict}
    invariant: {invariant}
    reason: a list of prompts answered with a 500 (the batch-500 fault)
    evidence: logprobe faults
"""


@pytest.mark.parametrize(("verdict", "invariant", "outcome", "code"), [
    ("ERROR", "ERR-004", "XFAIL", 0),  # exactly the known defect
    ("FAIL", "LMEVAL-002", "ERROR", 1),  # another failure: not what the entry knows
])
def test_a_test_level_expectation_matches_only_its_verdict_and_invariant(
        served, tmp_path, verdict, invariant, outcome, code):
    import dataclasses

    entry = tmp_path / "expect.yaml"
    entry.write_text(EXPECT_ONE.format(verdict=verdict, invariant=invariant))
    run = run_suite(dataclasses.replace(served, expectations=entry), tmp_path / "run",
                    "--fault=batch-500", "-k", "test_lmeval_request_batch_text")
    assert run.returncode == code, run.output[-3000:]
    assert run.verdicts() == {"suites/test_lmeval.py::test_lmeval_request_batch_text": outcome}
    if code:
        assert "the known defect changed or another one appeared" in run.output


def test_a_check_with_nothing_to_judge_is_not_a_pass(served, tmp_path):
    """With the logprobs key dropped (transformers serve does it), the value checks have
    nothing to judge: N/A in run.json and the summary, and no MUST counted as holding."""
    from logprobe.report.matrix import column, invariant_levels

    run = run_suite(served, tmp_path, "--fault=missing-logprobs", "-k",
                    "(test_logprob_values or test_alternatives_consistent) and not chat")
    verdicts = run.verdicts()
    assert set(verdicts.values()) == {"N/A"}, verdicts
    assert len(verdicts) == 4 and run.returncode == 0
    assert "N/A (nothing to judge, not a pass)" in run.output
    col = column(run.report)
    for invariant in ("VAL-001", "VAL-003", "VAL-004"):
        assert col.cells[invariant].status == "N/A", (invariant, col.cells[invariant])
    assert col.score(invariant_levels()) == (0, 0, [])


def test_without_a_tokenizer_token_ids_come_from_the_servers_tokenize(served, direct_run,
                                                                      tmp_path):
    """Without --tokenizer the token-id tests build their prompts with vLLM's /tokenize and
    judge them; the header says where the tokenizer came from. The vocabulary tests
    (TXT-006) cannot ask the server they judge: each still has a row (SKIP) saying why, and
    a diff against a run that judged them lists them as skipped, not as removed."""
    import dataclasses

    from logprobe.report.diff import diff_runs

    run = run_suite(dataclasses.replace(served, tokenizer=None), tmp_path, "-k",
                    "token_ids or vocabulary_spellings")
    verdicts = run.verdicts()
    ids = {n: v for n, v in verdicts.items() if "token_ids" in n or "token-ids" in n}
    spelled = {n: v for n, v in verdicts.items() if "vocabulary_spellings" in n}
    assert len(ids) >= 3 and set(ids.values()) == {"PASS"}, ids
    assert "/tokenize" in run.report["backend"]["tokenizer"]
    assert "tokenizer: the server's /tokenize" in run.output
    assert spelled and set(spelled.values()) == {"SKIP"}, spelled
    assert all("cannot witness its own vocabulary" in t["message"] for t in run.report["tests"]
               if t["nodeid"] in spelled)
    result = diff_runs(direct_run.report, run.report)
    skipped = {c.key for c in result.skipped if c.kind == "test"}
    assert set(spelled) <= skipped
    assert not {c.key for c in result.removed} & set(verdicts)
    assert "skipped now" in result.render("old", "new")


def test_the_servers_tokenize_agrees_with_the_models_tokenizer(served):
    """What the server's /tokenize gives is what the embedded model's tokenizer gives."""
    from logprobe.client import RecordingClient
    from logprobe.server_tokenizer import ServerTokenizer, locate
    from logprobe.tokenizer import load_tokenizer

    local = load_tokenizer(served.tokenizer)
    with RecordingClient(served.base_url) as client:
        url, found = locate(client, "smollm2")
        assert url is not None, found
        remote = ServerTokenizer(client, url, "smollm2")
        for text in ("The capital of France is Paris", " ünïcode 数字 42", "def f(x):\n  return"):
            ids = remote.encode(text, add_special_tokens=False)
            assert ids == local.encode(text, add_special_tokens=False), text
            assert remote.decode(ids) == local.decode(ids)
        assert remote.encode("", add_special_tokens=False) == []


def test_property_tests_show_their_progress(served, tmp_path):
    """pytest's live logging shows how far a property test has got, example by example."""
    run = run_suite(served, tmp_path, "-k", "test_generated_chat", "--log-cli-level=INFO")
    assert run.returncode == 0, run.output[-3000:]
    steps = re.findall(r"test_generated_chat: examples: (\d+)/(\d+)", run.output)
    assert steps and steps[0][0] == "1" and steps[-1][0] == steps[-1][1], steps


def test_oracle_judges_from_text_when_token_ids_are_refused(served, tmp_path):
    """A server that answers token-id prompts with a 500 (llama-cpp-python) is still held
    to the reference model, from text prompts: a softmax wrong everywhere is caught so."""
    if not served.tokenizer:
        pytest.skip("the oracle needs the embedded model's folder")
    run = run_suite(served, tmp_path, "--fault=token-ids-500,softmax-scaled", "-k",
                    "test_prompt_logprobs_match_the_reference_model")
    [row] = [t for t in run.report["tests"] if "test_oracle.py" in t["nodeid"]]
    assert row["data"]["oracle_prompts"].startswith("text (token-id prompts answered HTTP 500")
    assert row["violated"] == ["ORACLE-001"], row


KILLER_SEEDS = (str(2**63), str(-(2**63) - 1))  # what dies-on-seed-beyond-int64 dies of


def unanswered(row: dict[str, Any]) -> list[str]:
    """The curls of a row's exchanges that never connected on any attempt."""
    return [e["curl"] for e in row.get("exchanges") or [] if e.get("status") is None
            and all(a.startswith("ConnectError")
                    for a in [e.get("transport_error") or "", *(e.get("retries") or [])])]


def assert_death_named(run: Any, *, narrowed: bool) -> None:
    """A run through a server that died: exit 1; the summary leads with SRV-001, which names
    the killing request first (and says whether a replay narrowed it to that one); every
    test after the death is SERVER_DOWN with no reproducer, and no row carries a curl of a
    request the server never saw."""
    assert run.returncode == 1, run.output[-3000:]
    [row] = [t for t in run.report["tests"] if t["nodeid"] == "logprobe::run::server"]
    assert row["verdict"] == "FAIL" and row["violated"] == ["SRV-001"], row
    assert any(seed in row["reproducers"][0] for seed in KILLER_SEEDS), row["reproducers"]
    if narrowed:
        assert row["data"]["narrowed"]["killer"] is not None, row["data"]["narrowed"]
        assert "took it down again" in row["message"], row["message"]
    else:
        assert row["data"]["narrowed"]["killer"] is None
        assert "cannot restart" in row["message"], row["message"]
    section = run.output.split(" logprobe ===")[1].splitlines()
    assert section[1].startswith("FAIL logprobe::run::server: [MUST SRV-001]"), section[:3]
    down = [t for t in run.report["tests"] if t["verdict"] == "SERVER_DOWN"]
    assert len(down) >= 10, run.report["summary"]
    assert all(not t["reproducers"] and t["message"].startswith("not reached: the server is "
                                                                "down") for t in down)
    assert not [t["nodeid"] for t in run.report["tests"] if unanswered(t)]


def test_a_server_that_dies_behind_an_endpoint_is_named_with_its_suspects(served, tmp_path):
    """--endpoint at a server the suite did not start (the dying proxy, started here): the
    suspects are named, the killer first, and the report says it could not narrow them."""
    import dataclasses

    from logprobe.proxy import proxy_process

    proxy, url = proxy_process(served.base_url, tmp_path, faults="dies-on-seed-beyond-int64")
    with proxy:
        run = run_suite(dataclasses.replace(served, base_url=url), tmp_path / "run", "-n", "2",
                        "--hypothesis-profile=quick", oracle=False)
    assert_death_named(run, narrowed=False)


def test_a_booted_server_that_dies_is_restarted_and_the_killer_named(served, tmp_path):
    """--serve command booting a server that dies of one request (the dying proxy in front
    of vLLM): the suite restarts it, replays the suspects alone until one kills it again,
    names that one, and leaves no process behind."""
    import subprocess
    import sys

    from conftest import ROOT, SuiteRun

    record = tmp_path / "proxy-record.jsonl"
    command = (f"{sys.executable} -m logprobe.cli proxy --upstream {served.base_url} "
               f"--port {{port}} --fault dies-on-seed-beyond-int64 --record {record}")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "suites"), "-q", "-p", "no:randomly",
         "--serve=command", f"--serve-command={command}", f"--report-dir={tmp_path}",
         f"--tokenizer={served.tokenizer}", "--reference-model=none",
         "--hypothesis-profile=quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    report = json.loads((tmp_path / "run.json").read_text())
    assert_death_named(SuiteRun(done.returncode, done.stdout + done.stderr, report),
                       narrowed=True)
    left = subprocess.run(["pgrep", "-f", str(record)], capture_output=True, text=True,
                          check=False)
    assert not left.stdout.strip(), f"a restarted server outlived the run: {left.stdout}"
