"""Streams whose logprobs are missing, differ from the plain answer, are placeholders, or
arrive two tokens to a chunk."""

from __future__ import annotations

import copy
from typing import Any

from logprobe.faults.body import chat_entries
from logprobe.faults.registry import fault
from logprobe.invariants.readers import choices, completion_logprobs


@fault("stream-no-logprobs",
       "stream chunks without logprobs",
       "(synthetic)",
       ("STR-001",),
       properties=False,
       on="chunk")
def stream_without_logprobs(path: str, request: dict[str, Any], event: Any) -> Any:
    for choice in choices(event):
        if "logprobs" in choice:
            choice["logprobs"] = None
    return event


@fault("stream-logprobs-differ",
       "streamed logprobs 0.5 lower than non-streamed",
       "(synthetic)",
       ("STR-001", "STR-003"),
       on="chunk")
def stream_logprobs_differ(path: str, request: dict[str, Any], event: Any) -> Any:
    for choice in choices(event):
        lp = completion_logprobs(choice)
        if lp is not None:
            lp["token_logprobs"] = [v - 0.5 if isinstance(v, float | int) else v
                                    for v in lp["token_logprobs"]]
        for entry in chat_entries(choice):
            if isinstance(entry.get("logprob"), float | int):
                entry["logprob"] -= 0.5
    return event


FLOAT32_LOWEST = -3.4028234663852886e38


@fault("stream-placeholder-logprobs",
       "chosen tokens' logprobs in stream chunks sent as "
       "0.0 or float32's lowest value, their alternatives left true",
       "sgl-project/sglang#5761; NVIDIA/TensorRT-LLM#2406 (logprobs always 0.000, streaming "
       "too)",
       ("STR-001", "STR-003"),
       on="chunk")
def stream_placeholder_logprobs(path: str, request: dict[str, Any], event: Any) -> Any:
    """Chosen tokens' logprobs in chunks replaced by placeholders while their alternatives
    keep the true values: 0.0 ("certain") for a token below -0.01, float32's lowest value
    for the rest."""
    def placeholder(value: Any) -> Any:
        if not isinstance(value, float | int):
            return value
        return 0.0 if value < -0.01 else FLOAT32_LOWEST

    for choice in choices(event):
        lp = completion_logprobs(choice)
        if lp is not None:
            lp["token_logprobs"] = [placeholder(v) for v in lp["token_logprobs"]]
        for entry in chat_entries(choice):
            entry["logprob"] = placeholder(entry.get("logprob"))
    return event


def _logprob_chunk(event: Any) -> dict[str, Any] | None:
    """The one choice of a chunk that carries logprob entries, or None."""
    found = choices(event)
    if len(found) != 1:
        return None
    lp = completion_logprobs(found[0])
    if (lp is not None and lp["token_logprobs"]) or chat_entries(found[0]):
        return found[0]
    return None


def _merge_into(first: dict[str, Any], second: dict[str, Any]) -> None:
    """``second``'s tokens appended to ``first``, each given first's leading alternatives."""
    if isinstance(first.get("delta"), dict):
        first["delta"]["content"] = (first["delta"].get("content") or "") + (
            (second.get("delta") or {}).get("content") or "")
        entries = chat_entries(first)
        top = entries[0].get("top_logprobs")
        for entry in chat_entries(second):
            first["logprobs"]["content"].append({**entry, "top_logprobs": copy.deepcopy(top)})
    else:
        first["text"] = (first.get("text") or "") + (second.get("text") or "")
        into, more = first["logprobs"], second["logprobs"]
        top = next((t for t in into.get("top_logprobs") or [] if isinstance(t, dict)), None)
        count = len(more["token_logprobs"])
        for key in ("tokens", "token_logprobs", "text_offset"):
            if isinstance(into.get(key), list):
                into[key] += list(more.get(key) or [None] * count)
        if isinstance(into.get("top_logprobs"), list):
            into["top_logprobs"] += [copy.deepcopy(top) for _ in range(count)]
    first["finish_reason"] = second.get("finish_reason")


@fault("stream-chunks-merged",
       "two tokens per stream chunk, the second given the first's "
       "alternatives",
       "sgl-project/sglang#39260 (multi-token chunks: speculative decoding, "
       "stream_interval > 1)",
       ("STR-001", "STR-003"),
       on="stream")
def stream_chunks_merged(path: str, request: dict[str, Any], events: list[Any]) -> list[Any]:
    """Each two consecutive chunks with logprobs sent as one multi-token chunk (as
    speculative decoding or a stream interval above 1 sends them), the later token given
    the first token's alternatives."""
    out: list[Any] = []
    pending: Any = None
    for event in events:
        choice = _logprob_chunk(event)
        if choice is None:
            out.append(event)
            continue
        if pending is None:
            pending = event
            out.append(event)
            continue
        first = _logprob_chunk(pending)
        if first is not None and first.get("index", 0) == choice.get("index", 0) \
                and ("delta" in first) == ("delta" in choice):
            _merge_into(first, choice)
            pending = None
        else:
            pending = event
            out.append(event)
    return out
