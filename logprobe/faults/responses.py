"""The Responses API's logprobs: the wrong shape, an empty stream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from logprobe.faults.registry import fault


def _responses_parts(path: str, body: Any) -> Iterator[dict[str, Any]]:
    if path.rstrip("/").endswith("/responses") and isinstance(body, dict):
        for item in body.get("output") or []:
            for part in (item.get("content") or []) if isinstance(item, dict) else []:
                if isinstance(part, dict) and isinstance(part.get("logprobs"), list):
                    yield part


@fault("responses-chat-shape",
       "Responses logprobs in the chat shape {content: [...]}, "
       "not a flat list",
       "llama.cpp's server and SGLang answer the Responses request in "
       "other shapes (a 400, then logprobs: [])",
       ("RESP-001",))
def responses_chat_shape(path: str, request: dict[str, Any], body: Any) -> Any:
    """A Responses part's logprobs in chat's shape, {content: [...]}, not a flat list."""
    for part in _responses_parts(path, body):
        part["logprobs"] = {"content": part["logprobs"]}
    return body


@fault("responses-stream-empty",
       "a Responses stream's output_text.delta events with "
       "logprobs: []",
       "vLLM's streaming harmony path (gpt-oss)",
       ("RESP-006",),
       properties=False,
       on="chunk")
def responses_stream_empty(path: str, request: dict[str, Any], event: Any) -> Any:
    """Every streamed output_text.delta event with logprobs: [] (vLLM's streaming harmony
    path)."""
    if path.rstrip("/").endswith("/responses") and isinstance(event, dict) \
            and event.get("type") == "response.output_text.delta":
        event["logprobs"] = []
    return event


@fault("responses-values-off",
       "the Responses API's logprobs, alternatives alike, 0.3 nats below "
       "the model's: every value well formed, none of them the model's",
       "the ORACLE family's defect on the Responses surface: values from another "
       "computation than the tokens' (after a temperature, another precision or model)",
       ("RESP-007",),
       properties=False)
def responses_values_off(path: str, request: dict[str, Any], body: Any) -> Any:
    """Every logprob of a Responses part, and of its alternatives, 0.3 nats lower: the order
    and the shape stay right, so only a reference computation can tell."""
    for part in _responses_parts(path, body):
        for entry in part["logprobs"]:
            for item in [entry, *(entry.get("top_logprobs") or [])]:
                if isinstance(item, dict) and isinstance(item.get("logprob"), int | float):
                    item["logprob"] -= 0.3
    return body
