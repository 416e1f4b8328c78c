"""Expectation files: every shipped file loads, names tests that exist, and conditions on
versions the way its documentation says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import ROOT
from logprobe import expectations
from logprobe.expectations import Expectation

FILES = sorted((ROOT / "fixtures" / "expectations").glob("*.yaml"))


def test_every_backend_has_a_file():
    assert {f.stem for f in FILES} >= {"vllm", "llama-cpp", "transformers"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_file_loads_and_names_real_tests(path: Path):
    entries = expectations.load(path)
    assert entries
    for entry in entries:
        assert entry.test or entry.invariant, entry
        if entry.test:
            file, name = entry.test.split("::")
            function = re.sub(r"\[.*\]$", "", name)
            source = (ROOT / file).read_text()
            assert f"def {function}(" in source, f"{path.name}: no test {entry.test}"


def test_expected_is_an_alias_of_verdict(tmp_path: Path):
    path = tmp_path / "x.yaml"
    path.write_text("expectations:\n  - invariant: ERR-004\n    expected: ERROR\n"
                    "    reason: r\n    evidence: e\n")
    (entry,) = expectations.load(path)
    assert entry.verdict == "ERROR"


def test_an_entry_without_evidence_is_refused(tmp_path: Path):
    path = tmp_path / "x.yaml"
    path.write_text("expectations:\n  - invariant: ERR-004\n    reason: r\n")
    with pytest.raises(ValueError, match="evidence"):
        expectations.load(path)


@pytest.mark.parametrize(("spec", "version", "holds"), [
    (None, None, True), (None, "1.0", True),
    ("<0.4", "0.3.36", True), ("<0.4", "0.4.0", False), (">=0.32", "0.32.0", True),
    ("0.3.", "0.3.36", True), ("0.3.", "0.4.1", False), ("<0.4", None, False),
    ("<0.4", "not-a-version", False),
])
def test_server_version_condition(spec, version, holds):
    entry = Expectation(reason="r", evidence="e", invariant="ERR-004", server_version=spec)
    assert entry.applies_to(version) is holds


@pytest.mark.parametrize(("pattern", "request_body", "holds"), [
    ({"prompt": {"type": "list"}}, {"prompt": ["a", "b"]}, True),
    ({"prompt": {"type": "list"}}, {"prompt": [[1, 2], [3]]}, True),
    ({"prompt": {"type": "list"}}, {"prompt": [1, 2, 3]}, False),  # token ids: one prompt
    ({"prompt": {"type": "token-ids"}}, {"prompt": [1, 2, 3]}, True),
    ({"prompt": {"type": "string"}}, {"prompt": "a"}, True),
    ({"top_logprobs": {"in": [None, 0]}}, {"logprobs": True}, True),  # absent counts as null
    ({"top_logprobs": {"in": [None, 0]}}, {"top_logprobs": 3}, False),
    ({"top_logprobs": {"type": ["fraction", "string"]}}, {"top_logprobs": 1.5}, True),
    ({"top_logprobs": {"type": ["fraction", "string"]}}, {"top_logprobs": 5}, False),
    ({"top_logprobs": {"type": "absent"}}, {}, True),
    ({"n": {"min": 2}}, {"n": 3}, True),
    ({"n": {"min": 2}}, {}, False),
    ({"stream": True}, {}, False),
])
def test_request_patterns(pattern, request_body, holds):
    entry = Expectation(reason="r", evidence="e", invariant="ERR-004", request=pattern)
    assert entry.matches("ERR-004", "ERROR", "/v1/completions", request_body) is holds


def test_an_entry_can_require_the_refusal_words():
    entry = Expectation(reason="r", evidence="e", invariant="ERR-004", message="n must be 1")
    assert entry.matches("ERR-004", "UNSUPPORTED", "/v1/completions", {}, "... n must be 1 when")
    assert not entry.matches("ERR-004", "UNSUPPORTED", "/v1/completions", {}, "empty prompt")


def test_a_raw_body_pattern_matches_only_malformed_json():
    from logprobe.client import RawBody

    entry = Expectation(reason="r", evidence="e", invariant="SHAPE-004", request={"body": "raw"})
    assert entry.matches("SHAPE-004", "FAIL", "/v1/completions", RawBody(b"not json"))
    assert not entry.matches("SHAPE-004", "FAIL", "/v1/completions", {"prompt": "x"})


@pytest.mark.parametrize("path", [f for f in FILES if f.stem != "vllm"], ids=lambda p: p.stem)
def test_every_entry_is_scoped_and_reproducible(path: Path):
    """An entry names a test, or scopes its invariant by a request pattern; and each carries
    a curl line that reproduces what it expects."""
    for entry in expectations.load(path):
        run_level = (entry.invariant or "").startswith("NUM-")  # judged over the run, no request
        assert entry.test or entry.request or run_level, f"{path.name}: unscoped entry {entry}"
        assert "curl " in entry.evidence, f"{path.name}: no reproducer in {entry}"


def test_the_lmdeploy_file_names_every_violation_of_its_recorded_run():
    """LMDeploy runs only on a GPU: its file was written from the run recorded on an H200. Each
    MUST that run violated, in each failing test, is named by an entry of the file for a
    request path that test sent (and with the words the entry asks of the message)."""
    import json

    from logprobe.client import normalise_base_url

    run = json.loads((ROOT / "docs" / "baselines" / "lmdeploy-0.18-h200-raw-logprobs.json").read_text())
    entries = expectations.load(ROOT / "fixtures" / "expectations" / "lmdeploy.yaml")
    base = normalise_base_url(run["backend"]["base_url"])
    unexplained = []
    for row in run["tests"]:
        sent = [(x["url"].removeprefix(base), x["request"]) for x in row.get("exchanges") or []]
        for invariant in row["violated"]:
            if not any(e.matches(invariant, e.verdict or "", path, request, row["message"])
                       for e in entries for path, request in sent):
                unexplained.append((row["nodeid"], invariant))
    assert not unexplained, unexplained
