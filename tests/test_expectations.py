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
