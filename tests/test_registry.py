"""Adding an invariant is a one-file change.

A throwaway invariant, declared and registered in a module of its own outside the
package (loaded as a pytest plugin, touching no file of logprobe), is applied by the
suite's pinned request shapes and the generated properties to exactly the requests its
``when`` names, fails the run as a MUST, and reaches run.json and the HTML report, which
a process that never loaded the plugin renders from run.json alone.
"""

from __future__ import annotations

import subprocess
import sys

from conftest import run_suite

THROWAWAY = '''
from logprobe.invariants import asked
from logprobe.invariants.core import Level, Violation, checks, invariant

ZZZ_001 = invariant("ZZZ-001", Level.MUST, "throwaway: no completions response with logprobs",
                    "tests/test_registry.py")


@checks(ZZZ_001, when=asked.completions_logprobs)
def check_throwaway(request, body):
    return [Violation(ZZZ_001, "the throwaway invariant judged this response")]
'''


def test_a_throwaway_invariant_reaches_suite_properties_and_report(served, tmp_path):
    (tmp_path / "throwaway_invariant.py").write_text(THROWAWAY)
    run = run_suite(served, tmp_path / "run", "-p", "throwaway_invariant", "-k",
                    "pinned_request_shape or generated_completions",
                    env={"PYTHONPATH": str(tmp_path)})
    assert run.returncode == 1, run.output[-3000:]
    violated = {row["nodeid"].split("::")[-1]: set(row["violated"]) for row in run.report["tests"]}
    assert "ZZZ-001" in violated["test_pinned_request_shape[completions-logprobs]"]
    assert "ZZZ-001" in violated["test_pinned_request_shape[completions-echo]"]
    assert "ZZZ-001" in violated["test_generated_completions"]
    # ``when`` is honoured: chat and streams are not completions bodies with logprobs
    assert not violated["test_pinned_request_shape[chat-top-logprobs]"]
    assert not violated["test_pinned_request_shape[completions-stream]"]
    assert run.report["invariants"]["ZZZ-001"]["level"] == "MUST"

    page = tmp_path / "matrix.html"
    done = subprocess.run([sys.executable, "-m", "logprobe.cli", "report",
                           str(tmp_path / "run" / "run.json"), "-o", str(page)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    html = page.read_text()
    assert "ZZZ-001" in html and "throwaway: no completions response with logprobs" in html


def test_raw_bpe_fault_spells_gpt2_pieces_from_its_own_table():
    """The raw-BPE fault's spelling is GPT-2's, known from the published vocabulary (' the'
    is 'Ġthe', a newline 'Ċ', 'é' the two bytes 'Ã©'), and it agrees with TXT-006's
    reading on every character of the Basic Multilingual Plane's first block."""
    from logprobe.faults.alternatives import gpt2_piece
    from logprobe.invariants.text import as_byte_level_piece

    assert [gpt2_piece(t) for t in (" the", "\n", "é")] == ["Ġthe", "Ċ", "Ã©"]
    assert all(gpt2_piece(chr(c)) == as_byte_level_piece(chr(c)) for c in range(0x3000))


def test_a_stateful_fault_starts_fresh_in_every_run():
    """stale-prefix-cache remembers the prompts it saw, per run: the first sighting in a new
    run is served as it came, whatever an earlier run saw."""
    import copy

    from logprobe import faults

    body = {"choices": [{"index": 0, "logprobs": {"tokens": ["a", "b", "c"],
                                                  "token_logprobs": [None, -1.0, -2.0],
                                                  "top_logprobs": [None, {}, {}]}}]}
    request = {"prompt": "ab", "echo": True}
    [first] = faults.resolve("stale-prefix-cache")
    once = faults.to_json([first], "/v1/completions", request, copy.deepcopy(body))
    twice = faults.to_json([first], "/v1/completions", request, copy.deepcopy(body))
    assert once == body
    assert twice["choices"][0]["logprobs"]["token_logprobs"][1] == -1.7
    [again] = faults.resolve("stale-prefix-cache")
    assert faults.to_json([again], "/v1/completions", request, copy.deepcopy(body)) == body
