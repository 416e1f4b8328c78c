"""Reports: run.json's schema, `logprobe diff`, `--baseline`, the HTML matrix in a real browser,
and a run split across pytest-xdist workers reporting exactly what one process reports.

The committed baselines in docs/baselines/ are real runs (./dev baselines) of vLLM,
llama-cpp-python and `transformers serve`; here they are data for the pure report
functions. Everything that runs the suite runs it against the embedded vLLM.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, run_suite
from logprobe import schemas
from logprobe.report.diff import diff_runs
from logprobe.report.html import echo_points, oracle_points, render
from logprobe.report.matrix import load_run

BASELINES = ROOT / "docs" / "baselines"
BACKENDS = ["vllm", "vllm-gpu-numerics", "llama-cpp", "transformers"]
# Every committed run: made here by ./dev baselines, or recorded on a lent GPU (provenance.yaml).
ALL_BASELINES = sorted(p.stem for p in BASELINES.glob("*.json"))


def _baseline(name: str) -> dict:
    return load_run(BASELINES / f"{name}.json")


def _logprobe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "logprobe.cli", *args], capture_output=True,
                          text=True, check=False, cwd=ROOT)


@pytest.mark.parametrize("name", ALL_BASELINES)
def test_baselines_follow_the_run_schema(name):
    assert schemas.errors("run", _baseline(name)) == []


def test_run_schema_rejects_what_it_must():
    broken = copy.deepcopy(_baseline("vllm"))
    broken["tests"][0]["verdict"] = "MAYBE"
    del broken["tests"][1]["violated"]
    broken["tests"][2]["reproducers"] = ["wget http://example"]
    found = "\n".join(schemas.errors("run", broken))
    assert "MAYBE" in found and "violated" in found and "wget" in found, found


def test_fresh_run_follows_the_run_schema(direct_run):
    assert schemas.errors("run", direct_run.report) == []
    assert direct_run.report["traffic"]["requests"] > 0


def test_baselines_show_the_known_defects():
    """The defects each backend is known for (shared/recordings) appear as failures."""
    llama = {t["nodeid"]: t for t in _baseline("llama-cpp")["tests"]}
    violated = {i for t in llama.values() for i in t["violated"]}
    assert "LMEVAL-002" in violated, "the echo shift"
    assert any("top_logprobs_out_of_range[21]" in n and t["verdict"] == "FAIL"
               for n, t in llama.items()), "top_logprobs 25 accepted"
    batch = llama["suites/test_lmeval.py::test_lmeval_request_batch_text"]
    assert batch["verdict"] == "ERROR" and "HTTP 500" in batch["message"], "500 on a prompt list"
    transformers = _baseline("transformers")["tests"]
    logprobs_tests = [t for t in transformers if "SHAPE-002" in t["invariants"]
                      or "SHAPE-003" in t["invariants"]]
    assert any(t["verdict"] == "IGNORED" for t in logprobs_tests)


def test_diff_of_vllm_and_llama_cpp_lists_regressions_and_exits_1():
    done = _logprobe("diff", str(BASELINES / "vllm.json"), str(BASELINES / "llama-cpp.json"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "MUST invariant LMEVAL-002: PASS -> FAIL" in done.stdout, done.stdout
    assert "REGRESSED" in done.stdout
    same = _logprobe("diff", str(BASELINES / "vllm.json"), str(BASELINES / "vllm.json"))
    assert same.returncode == 0 and "regressions: 0" in same.stdout, same.stdout


def test_diff_counts_a_fix_and_a_removed_check():
    old, new = _baseline("llama-cpp"), copy.deepcopy(_baseline("llama-cpp"))
    failing = next(t for t in new["tests"] if t["verdict"] == "FAIL")
    failing.update(verdict="PASS", violated=[])
    removed = new["tests"].pop()
    result = diff_runs(old, new)
    assert failing["nodeid"] in [c.key for c in result.fixes]
    assert removed["nodeid"] in [c.key for c in result.removed]
    assert not result.must_regressed


def test_diff_counts_a_test_the_server_s_death_kept_from_passing_as_a_must_regression():
    """A row not reached (SERVER_DOWN, no level of its own) regresses at the level it
    passed at."""
    old, new = _baseline("vllm"), copy.deepcopy(_baseline("vllm"))
    passing = next(t for t in new["tests"] if t["verdict"] == "PASS" and t["level"] == "MUST")
    passing.update(verdict="SERVER_DOWN", level=None, invariants=[], reproducers=[])
    result = diff_runs(old, new)
    assert passing["nodeid"] in [c.key for c in result.regressions]
    assert result.must_regressed


def test_diff_refuses_a_file_that_is_not_a_run(tmp_path):
    bogus = tmp_path / "x.json"
    bogus.write_text("<html>")
    done = _logprobe("diff", str(bogus), str(BASELINES / "vllm.json"))
    assert done.returncode == 2 and "not a readable run.json" in done.stderr


def test_baseline_option_fails_a_run_that_regressed(served, direct_run, tmp_path):
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(direct_run.report))
    broken = run_suite(served, tmp_path / "broken", "--fault=echo-shifted", "-k", "lmeval",
                       f"--baseline={baseline}")
    assert broken.returncode == 1
    assert "against the baseline" in broken.output and "REGRESSED" in broken.output
    assert "LMEVAL-002: PASS -> FAIL" in broken.output, broken.output[-3000:]


def test_xdist_workers_report_what_one_process_reports(served, direct_run, tmp_path):
    """One server, two workers: every test in run.json once, the same verdicts, and the same
    requests: an exchange several tests judge is sent once per run, not once per worker."""
    split = run_suite(served, tmp_path, "-n", "2", "--dist", "loadgroup")
    assert split.returncode == direct_run.returncode, split.output[-3000:]
    assert split.verdicts() == direct_run.verdicts()
    assert split.report["traffic"]["requests"] == direct_run.report["traffic"]["requests"]


HUGE_INTEGER_CHECK = """
from logprobe.invariants import errors


def test_rejects_a_huge_negative_logprobs(api, model, judge):
    exchange = api.completions({"model": model, "prompt": "hi", "max_tokens": 1,
                                "logprobs": -2**40})
    judge.rejection(exchange, errors.ERR_003)
"""


def test_xdist_rows_carry_integers_execnet_cannot(served, tmp_path):
    """Workers hand rows to the controller through execnet, which cannot encode an integer
    below -2**31 (its save_int packs it as a 4-byte int) and crashed the worker; generated
    invalid requests carry such integers. Rows and traffic cross as JSON text."""
    check = tmp_path / "test_huge.py"
    check.write_text(HUGE_INTEGER_CHECK)
    run = run_suite(served, tmp_path / "out", "-n", "2", tests=check)
    assert run.returncode == 0, run.output[-3000:]
    [row] = run.report["tests"]
    assert row["verdict"] == "PASS"
    assert row["exchanges"][0]["request"]["logprobs"] == -2**40


UNSENDABLE_REPORTS = """
import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    report.unsendable = -2**40
    return report
"""


def test_xdist_internal_error_fails_the_run(served, tmp_path):
    """A worker's internal error (here: a report execnet cannot carry) must not end in exit 0
    with no test reported, as pytest-xdist alone does (pytest-dev/pytest-xdist#1017)."""
    (tmp_path / "test_huge.py").write_text(HUGE_INTEGER_CHECK)
    (tmp_path / "conftest.py").write_text(UNSENDABLE_REPORTS)
    run = run_suite(served, tmp_path / "out", "-n", "2", tests=tmp_path)
    assert run.returncode == 3, run.output[-3000:]
    assert run.report["interrupted"] is True


def test_report_writes_the_page_and_the_readme_table_in_one_call(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("before\n<!-- compat:begin -->\nold table\n<!-- compat:end -->\nafter\n")
    page = tmp_path / "matrix.html"
    done = _logprobe("report", *(str(BASELINES / f"{name}.json") for name in BACKENDS),
                     "-o", str(page), "--markdown-into", str(readme))
    assert done.returncode == 0, done.stderr
    text = readme.read_text()
    assert "old table" not in text and "llama-cpp" in text and text.endswith("after\n")
    assert "<svg" in page.read_text()


def test_echo_plot_points_come_from_the_teacher_forcing_tests():
    vllm, llama = echo_points(_baseline("vllm")), echo_points(_baseline("llama-cpp"))
    assert vllm and all(abs(t - e) <= 1e-2 for t, e in vllm)
    assert llama and sum(abs(t - e) > 0.5 for t, e in llama) > len(llama) / 2  # shifted
    gpu = echo_points(_baseline("vllm-gpu-numerics"))  # drift, all of it within the tolerance
    assert gpu and any(abs(t - e) > 1e-2 for t, e in gpu) and all(abs(t - e) <= 0.5 for t, e in gpu)


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is missing: ./dev test installs it (apt-get install chromium)")
    return found


def test_html_matrix_renders_in_chromium(chromium, tmp_path):
    from logprobe.report.provenance import load_runs

    page = tmp_path / "matrix.html"
    runs, origins = load_runs([BASELINES / f"{name}.json" for name in BACKENDS])
    page.write_text(render(runs, provenances=origins), encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    invariants = {i for run in runs for t in run["tests"] for i in t["invariants"]}
    assert dom.count('<td class="cell') == len(invariants) * len(BACKENDS)
    assert 'data-status="FAIL"' in dom and 'data-status="PASS"' in dom
    # one echo-vs-teacher plot per run, and one against the reference model per run that had it
    with_oracle = [run for run in runs if oracle_points(run)]
    assert with_oracle and "Against the reference model" in dom
    assert dom.count("<svg") == len(BACKENDS) + len(with_oracle) and "off the diagonal" in dom
    assert "http://" not in dom.split("<body>")[0], "the page must not fetch anything"
    shot = ROOT / "docs" / "report.png"
    subprocess.run([chromium, *flags, "--window-size=1400,2300", f"--screenshot={shot}",
                    page.as_uri()], capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 50_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_readme_tables_are_generated_not_copied():
    """The fault table (docs/faults.md) comes from FAULTS and the README's compatibility
    table from the baselines: `logprobe faults --markdown-into docs/faults.md`,
    `./dev baselines`."""
    from logprobe.faults import markdown_table as fault_table
    from logprobe.report.html import markdown_table
    from logprobe.report.provenance import load_runs

    readme = (ROOT / "README.md").read_text()
    assert fault_table() in (ROOT / "docs" / "faults.md").read_text()
    assert markdown_table(*load_runs(sorted(BASELINES.glob("*.json")))) in readme


def test_every_baseline_says_where_it_ran_and_the_gpu_rows_that_they_were_recorded_there():
    """`logprobe report docs/baselines/*.json` renders every row; a GPU row names its machine
    and that it was recorded elsewhere, a row judged with an expectation file says so, and a
    version the server never reported comes from the record, marked as such."""
    from logprobe.report.html import markdown_table
    from logprobe.report.provenance import load_runs

    files = sorted(BASELINES.glob("*.json"))
    runs, origins = load_runs(files)
    assert len(runs) == len(files) and all(o.name and o.machine and o.judged for o in origins)
    by_name = {o.name: o for o in origins}
    bf16 = by_name["vllm 0.26.0 (CUDA, H200, bf16)"]
    assert "H200" in bf16.machine and bf16.recorded and "raw" in bf16.judged
    assert "vllm.yaml" in by_name["vllm 0.26.0 (CUDA, H200, fp16)"].judged
    table = markdown_table(runs, origins)
    assert "| lmdeploy 0.18.0 (PyTorch engine, H200, raw_logprobs) | 0.18.0 (recorded with the run) |" \
        in table
    assert table.count("recorded there, kept as made") == 5
    page = render(runs, provenances=origins)
    assert page.count("data-provenance") == len(runs) and "NVIDIA H200, driver 580.159.04" in page
    recorded = {o.name for o in origins if o.recorded}
    assert all(o.machine.startswith("NVIDIA H200") for o in origins if o.name in recorded)


def test_the_invariant_catalogue_in_docs_is_generated_from_the_registry():
    """docs/invariants.md: `logprobe invariants --markdown-into docs/invariants.md`."""
    from logprobe.report.invariants_doc import markdown

    text = (ROOT / "docs" / "invariants.md").read_text()
    assert f"<!-- invariants:begin -->\n{markdown()}\n<!-- invariants:end -->" in text


def test_gpu_numerics_baseline_fails_nothing_the_plain_server_does_not():
    """The embedded vLLM behind the gpu-numerics fault (a bf16 GPU's prefill/decode drift):
    the same failing MUSTs as the plain server judged raw, a drift of more than 0.05 nats
    reported, and NUM-001 holding."""
    from logprobe.report.matrix import column, invariant_levels

    levels = invariant_levels()
    plain, gpu = _baseline("vllm"), _baseline("vllm-gpu-numerics")
    assert gpu["backend"]["faults"] == ["gpu-numerics"]
    assert column(gpu).score(levels)[2] == column(plain).score(levels)[2]
    [row] = [t for t in gpu["tests"] if t["nodeid"] == "logprobe::run::echo-vs-generation"]
    assert row["verdict"] == "PASS" and row["data"]["drift"]["max"] > 0.05, row
