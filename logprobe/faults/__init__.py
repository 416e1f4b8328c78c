"""Named ways to break a server's responses, each modelled on a real defect.

Each family module declares its faults with ``@fault`` beside the transforms they apply
(``registry``); ``apply`` applies them to one exchange, for the fault-injection proxy and
for the project's tests on recorded responses alike, so every check is shown to fail on
the defect it exists for. Importing this package registers every family.
"""

from __future__ import annotations

from typing import Any

from logprobe.faults import (  # noqa: F401  (each registers its faults)
    alternatives,
    apply,
    consistency,
    death,
    errors,
    prompt,
    responses,
    shapes,
    streams,
    text,
    values,
)
from logprobe.faults.apply import to_json
from logprobe.faults.registry import FAULTS, Fault, dumps, markdown_table, resolve

__all__ = ["FAULTS", "Fault", "apply", "dumps", "markdown_table", "resolve", "to_json"]


def break_json(name: str, path: str, request: dict[str, Any], body: Any) -> Any:
    """A JSON body broken by one fresh fault, as the proxy would break it."""
    return to_json(resolve(name), path, request, body)


def break_event(name: str, path: str, request: dict[str, Any], event: Any) -> Any:
    """One SSE payload broken by one fresh fault, as the proxy would break it."""
    return apply.to_event(resolve(name), path, request, event)


def break_stream(name: str, path: str, request: dict[str, Any], events: list[Any]) -> list[Any]:
    """A whole stream's payloads broken by one fresh fault, as the proxy would break them."""
    return apply.to_stream(resolve(name), path, request, events)
