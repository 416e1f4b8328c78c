"""Known deviations as data: per-backend expectation files.

A team adopting a serving framework wants the gate to fail on *new* defects,
not on ones already understood. An expectation names a deviation precisely:

* ``test`` (a node id): the test is a strict xfail; if it passes, the run
  says so (XPASS), and the stale expectation gets removed;
* ``invariant`` + ``verdict`` (+ ``request``, a pattern over the request
  body): a matching violation is recorded as EXPECTED, with its reason and
  evidence, instead of failing the test. Property tests need this form: the
  same test meets the deviation in some generated requests and not others.

Every expectation carries a reason and evidence (a link or a reproducer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Expectation:
    reason: str
    evidence: str
    test: str | None = None
    invariant: str | None = None
    verdict: str | None = None
    request: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    def matches(self, invariant: str, verdict: str, path: str, request: Any) -> bool:
        if self.invariant is None or self.invariant != invariant:
            return False
        if self.verdict is not None and self.verdict != verdict:
            return False
        if self.path is not None and not path.endswith(self.path):
            return False
        if not isinstance(request, dict):
            return not self.request
        return all(_matches(request.get(key), want) for key, want in self.request.items())


def _matches(value: Any, want: Any) -> bool:
    """A value equals ``want``, or lies in ``{min: a, max: b}``."""
    if isinstance(want, dict):
        if not isinstance(value, int | float) or isinstance(value, bool):
            return False
        return want.get("min", value) <= value <= want.get("max", value)
    return value == want


def load(path: Path) -> list[Expectation]:
    data = yaml.safe_load(path.read_text()) or {}
    entries = []
    for raw in data.get("expectations", []):
        if not raw.get("reason") or not raw.get("evidence"):
            raise ValueError(f"{path}: every expectation needs a reason and evidence: {raw}")
        entries.append(Expectation(**raw))
    return entries


def default_file(backend: str) -> Path | None:
    """fixtures/expectations/<backend>.yaml, when the suite boots that backend itself."""
    here = Path(__file__).resolve().parent
    for root in (here / "_data" / "fixtures", here.parent / "fixtures"):
        candidate = root / "expectations" / f"{backend}.yaml"
        if candidate.is_file():
            return candidate
    return None
