"""What a fault is, and the registry the family modules declare theirs in with ``@fault``.

A fault is data plus pure transforms: of the request before it is forwarded, of a JSON
response body, of each SSE event, of a whole stream, or of the raw status and body.
``trips`` names the invariants that must report the fault (checked against the catalogue
when it registers, so a misspelt id fails at import); a fault with ``fatal=False`` must be
reported without failing the run. A hook keeping memory between requests (a cache that
goes stale with each sighting) is a ``Stateful`` object: every ``resolve`` gives a fresh
one, so no run or test sees another's sightings.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

JsonHook = Callable[[str, dict[str, Any], Any], Any]
RequestHook = Callable[[str, dict[str, Any]], dict[str, Any]]
RawHook = Callable[[str, dict[str, Any], int, bytes], tuple[int, bytes]]
# A whole stream's parsed data payloads ("[DONE]" excluded), for faults that merge chunks.
StreamHook = Callable[[str, dict[str, Any], list[Any]], list[Any]]
Predicate = Callable[[str, dict[str, Any]], bool]
HOOKS = ("request", "json", "chunk", "stream", "raw", "dies")


class Stateful:
    """A hook with memory across requests; ``fresh`` is a new one with none."""

    def fresh(self) -> Stateful:
        return type(self)()


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    seen_in: str
    trips: tuple[str, ...]
    fatal: bool = True
    # A non-fatal fault must still be seen: (invariant, words its finding carries).
    shows: tuple[str, str] | None = None
    # Inside the property suite's request space (no non-streamed twin of a stream, no
    # teacher forcing beyond a sampled n > 1, no temperature pairs or prompt lists there):
    # the properties alone must catch it.
    properties: bool = True
    request: RequestHook | None = None
    json: JsonHook | None = None
    chunk: JsonHook | None = None
    stream: StreamHook | None = None
    raw: RawHook | None = None
    # A request the server dies of: the proxy answers it with a 500 and exits at once
    # (every later connection refused), as a dead engine's process does.
    dies: Predicate | None = None
    # The defect's signature in a report: (invariant, words its message carries). A run's
    # failures of that kind are grouped as this known defect (logprobe.report.defects),
    # named with where it was seen; the kill matrix proves each fault's run names it.
    looks: tuple[tuple[str, str], ...] = ()
    # Which exchanges the fault touches (path, request); None: every one. Its hooks are
    # called only for those (``logprobe.faults.apply``).
    when: Predicate | None = None

    def applies(self, path: str, request: dict[str, Any]) -> bool:
        return self.when is None or self.when(path, request)

    def fresh(self) -> Fault:
        """This fault with its stateful hooks new (no memory of an earlier run)."""
        renewed = {hook: value.fresh() for hook in HOOKS
                   if isinstance(value := getattr(self, hook), Stateful)}
        return replace(self, **renewed) if renewed else self


FAULTS: dict[str, Fault] = {}
F = TypeVar("F")


def register(fault: Fault) -> Fault:
    """Add a fault to the registry; its name must be new and its invariants known."""
    import logprobe.invariants.catalogue  # noqa: F401  (every invariant module: the catalogue)
    from logprobe.invariants.core import CATALOGUE

    if fault.name in FAULTS:
        raise ValueError(f"fault {fault.name} registered twice")
    unknown = [i for i in fault.trips + tuple(i for i, _ in fault.looks) if i not in CATALOGUE]
    if unknown:
        raise ValueError(f"fault {fault.name}: unknown invariants {', '.join(unknown)}")
    FAULTS[fault.name] = fault
    return fault


def fault(name: str, description: str, seen_in: str, trips: tuple[str, ...], *,
          on: str | tuple[str, ...] = "json", **more: Any) -> Callable[[F], F]:
    """Declare the function below as the ``on`` hook(s) of a new fault (``json`` unless
    said), with the rest of ``Fault``'s fields. A ``Stateful`` class declares a hook with
    memory: the registry keeps one of its objects, and ``resolve`` a new one per run."""
    hooks = (on,) if isinstance(on, str) else on

    def declare(hook: F) -> F:
        made = hook() if isinstance(hook, type) else hook
        register(Fault(name, description, seen_in, trips, **more, **dict.fromkeys(hooks, made)))
        return hook

    return declare


def resolve(names: str | list[str] | None) -> list[Fault]:
    """Faults by name (comma-separated or a list), each fresh; a clear error for an unknown
    one."""
    if not names:
        return []
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = [n for n in names if n != "none"]  # "none": the proxy, transparent
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        raise ValueError(f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(FAULTS)}")
    return [FAULTS[n].fresh() for n in names]


def dumps(body: Any) -> bytes:
    """Serialise like a server would, NaN included (the nan-literal fault relies on it)."""
    return json.dumps(body, allow_nan=True, ensure_ascii=False).encode()


def markdown_table() -> str:
    """The README's table of faults, generated from FAULTS (never copied by hand)."""
    lines = ["| fault | what it does | seen in | caught by |", "| --- | --- | --- | --- |"]
    for known in FAULTS.values():
        caught = ", ".join(known.trips)
        if not known.fatal:
            caught += " (must **not** fail the run)"
        lines.append(f"| `{known.name}` | {known.description} | {known.seen_in} | {caught} |")
    return "\n".join(lines)
