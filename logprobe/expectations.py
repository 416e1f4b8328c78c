"""Known deviations as data: per-backend expectation files.

A team adopting a serving framework wants the gate to fail on *new* defects,
not on ones already understood. An expectation names a deviation precisely:

* ``test`` (a node id): the test is a strict xfail; if it passes, the run
  says so (XPASS), and the stale expectation gets removed;
* ``invariant`` + ``verdict`` (+ ``request``, a pattern over the request
  body, ``path``, and ``message``, words the violation's message must contain): a
  matching violation is recorded as EXPECTED, with its reason and evidence, instead
  of failing the test. Property tests need this form: the
  same test meets the deviation in some generated requests and not others.

Every expectation carries a reason and evidence (a link or a reproducer), and
may hold only for some server versions: ``server_version: "<0.4"`` (a PEP 440
specifier) or ``"0.3."`` (a prefix). ``expected:`` is accepted for ``verdict:``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from logprobe.data import data_dir


@dataclass(frozen=True)
class Expectation:
    reason: str
    evidence: str
    test: str | None = None
    invariant: str | None = None
    verdict: str | None = None
    request: dict[str, Any] = field(default_factory=dict)
    path: str | None = None
    server_version: str | None = None
    message: str | None = None  # words the violation's message must contain

    def applies_to(self, version: str | None) -> bool:
        """Whether the expectation holds for a server reporting ``version`` (None: unknown)."""
        if self.server_version is None:
            return True
        if version is None:
            return False
        spec = self.server_version.strip()
        if spec[:1] in "<>=!~":
            from packaging.specifiers import InvalidSpecifier, SpecifierSet
            from packaging.version import InvalidVersion

            try:
                return SpecifierSet(spec).contains(version, prereleases=True)
            except (InvalidSpecifier, InvalidVersion):
                return False
        return version.startswith(spec)

    def matches(self, invariant: str, verdict: str, path: str, request: Any,
                message: str = "") -> bool:
        if self.invariant is None or self.invariant != invariant:
            return False
        if self.message is not None and self.message not in message:
            return False
        if self.verdict is not None and self.verdict != verdict:
            return False
        if self.path is not None and not path.endswith(self.path):
            return False
        if not isinstance(request, dict):  # bytes sent as they are: malformed JSON
            return not self.request or self.request == {"body": "raw"}
        return all(_matches(request.get(key, ABSENT), want) for key, want in self.request.items())

    def matches_outcome(self, verdict: str, invariants: set[str]) -> bool:
        """For an entry naming a test: whether the test ended as the entry says (its verdict
        and invariant, where the entry names them)."""
        return (self.verdict is None or self.verdict == verdict) and \
            (self.invariant is None or self.invariant in invariants)


def expected_by(entries: list[Expectation], invariant: str, verdict: str, message: str,
                sent: list[tuple[str, Any]] | None = None) -> Expectation | None:
    """The first entry (not one naming a test) that describes a violation found in any of
    the exchanges ``sent`` (path, request); None: no entry does. Without exchanges (a
    run-level finding), an entry matches on the invariant, verdict and message alone
    unless it names a path or a request."""
    for entry in entries:
        if entry.test is not None:
            continue
        for path, request in sent if sent is not None else [("", {})]:
            if entry.matches(invariant, verdict, path, request, message):
                return entry
    return None


@dataclass(frozen=True)
class ExpectationSet:
    """The expectations of a run, where they came from, and why that file."""

    entries: list[Expectation]
    file: str | None
    why: str

    def applying(self, version: str | None) -> list[Expectation]:
        return [e for e in self.entries if e.applies_to(version)]


ABSENT = object()


def _kind(value: Any) -> str:
    """What a request value is, in the words a pattern uses."""
    if value is ABSENT:
        return "absent"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "fraction"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return "token-ids"
        return "list"  # a list of prompts (strings or token-id lists)
    return type(value).__name__


def _matches(value: Any, want: Any) -> bool:
    """A value equals ``want``, or meets a pattern: ``{min: a, max: b}`` (a number in range),
    ``{type: T}`` (absent, null, boolean, integer, fraction, string, token-ids, list: a list
    of prompts), ``{in: [...]}`` (one of these values; null also matches an absent key)."""
    if not isinstance(want, dict):
        return (None if value is ABSENT else value) == want
    if "type" in want:
        kinds = want["type"] if isinstance(want["type"], list) else [want["type"]]
        if _kind(value) not in kinds:
            return False
    if "in" in want and (None if value is ABSENT else value) not in want["in"]:
        return False
    if "min" in want or "max" in want:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return False
        return want.get("min", value) <= value <= want.get("max", value)
    return True


def load(path: Path) -> list[Expectation]:
    data = yaml.safe_load(path.read_text()) or {}
    entries = []
    for raw in data.get("expectations", []):
        if not raw.get("reason") or not raw.get("evidence"):
            raise ValueError(f"{path}: every expectation needs a reason and evidence: {raw}")
        raw = dict(raw)
        if "expected" in raw:
            raw["verdict"] = raw.pop("expected")
        try:
            entries.append(Expectation(**raw))
        except TypeError as exc:
            raise ValueError(f"{path}: {exc} in {raw}") from exc
    return entries


def given(option: str | None) -> ExpectationSet | None:
    """``--expectations FILE`` or ``none``; None when not given (the server's framework then
    chooses: ``for_family``). Raises OSError or ValueError for a file that cannot be used."""
    if option == "none":
        return ExpectationSet([], None, "--expectations none: judged raw")
    if not option:
        return None
    return ExpectationSet(load(Path(option)), option, "--expectations")


def chosen(option: str | None, family: str | None, identified_by: str | None) -> ExpectationSet:
    """The expectation set of a run or a diagnosis: the one given, else the framework's."""
    return given(option) or for_family(family, identified_by)


def for_family(family: str | None, identified_by: str | None) -> ExpectationSet:
    """The expectation file of the framework a server named itself as, or none, with why."""
    path = default_file(family) if family else None
    if path is None:
        why = (f"the server named itself {family!r}, which has no expectation file" if family
               else "the server did not name its framework")
        return ExpectationSet([], None, why)
    return ExpectationSet(load(path), str(path), f"{family}: {identified_by}")


def default_file(backend: str) -> Path | None:
    """fixtures/expectations/<backend>.yaml, when the suite boots that backend itself."""
    return data_dir("fixtures", "expectations", f"{backend}.yaml")
