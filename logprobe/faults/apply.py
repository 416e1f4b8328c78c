"""Faults applied to one exchange, in one place: the proxy calls these on a real server's
traffic, and the project's tests on recorded responses, so both break a response alike.
Each hook runs only where its fault ``applies`` (its ``when``), in the order given."""

from __future__ import annotations

from typing import Any

from logprobe.faults.registry import Fault


def dying(faults: list[Fault], path: str, request: dict[str, Any]) -> Fault | None:
    """The fault whose server dies of this request, if any."""
    return next((f for f in faults if f.dies is not None and f.applies(path, request)
                 and f.dies(path, request)), None)


def to_request(faults: list[Fault], path: str, request: dict[str, Any]) -> dict[str, Any]:
    """The request as forwarded."""
    for fault in faults:
        if fault.request is not None and fault.applies(path, request):
            request = fault.request(path, request)
    return request


def to_json(faults: list[Fault], path: str, request: dict[str, Any], body: Any) -> Any:
    """A parsed JSON response body as answered."""
    for fault in faults:
        if fault.json is not None and fault.applies(path, request):
            body = fault.json(path, request, body)
    return body


def to_raw(faults: list[Fault], path: str, request: dict[str, Any], status: int,
           body: bytes) -> tuple[int, bytes]:
    """A response's status and bytes as answered."""
    for fault in faults:
        if fault.raw is not None and fault.applies(path, request):
            status, body = fault.raw(path, request, status, body)
    return status, body


def to_event(faults: list[Fault], path: str, request: dict[str, Any], event: Any) -> Any:
    """One parsed SSE data payload as sent."""
    for fault in faults:
        if fault.chunk is not None and fault.applies(path, request):
            event = fault.chunk(path, request, event)
    return event


def to_stream(faults: list[Fault], path: str, request: dict[str, Any],
              events: list[Any]) -> list[Any]:
    """A whole stream's payloads as sent (faults that merge chunks see the next one); a
    payload that is not JSON (kept as text) passes the chunk hooks untouched."""
    for fault in faults:
        if not fault.applies(path, request):
            continue
        if fault.chunk is not None:
            events = [fault.chunk(path, request, e) if isinstance(e, dict) else e for e in events]
        if fault.stream is not None:
            events = fault.stream(path, request, events)
    return events


def needs_whole_stream(faults: list[Fault]) -> bool:
    return any(f.stream is not None for f in faults)
