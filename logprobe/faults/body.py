"""Where the faults reach into requests and responses: which endpoint a path is, each
choice's logprobs, and the rows of an echoed prompt, moved together with their alternatives."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator
from typing import Any

from logprobe.invariants.readers import chat_content, choices, completion_logprobs


def is_completions(path: str) -> bool:
    return path.rstrip("/").endswith("/completions") and "/chat/" not in path


def is_chat(path: str) -> bool:
    return path.rstrip("/").endswith("/chat/completions")


def completions(path: str, request: dict[str, Any]) -> bool:
    """``when``: a completions request."""
    return is_completions(path)


def chat(path: str, request: dict[str, Any]) -> bool:
    """``when``: a chat completions request."""
    return is_chat(path)


def echoed_completions(path: str, request: dict[str, Any]) -> bool:
    """``when``: a completions request with echo."""
    return is_completions(path) and bool(request.get("echo"))


def each_completion_logprobs(body: Any) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(choice, its completions logprobs) for every choice that has them."""
    for choice in choices(body):
        lp = completion_logprobs(choice)
        if lp is not None:
            yield choice, lp


def chat_entries(choice: dict[str, Any]) -> list[dict[str, Any]]:
    return chat_content(choice) or []


def unit_hash(*key: Any) -> float:
    """A deterministic number in [0, 1) from ``key``: faults repeat for a repeated request."""
    digest = hashlib.sha256(json.dumps(key, ensure_ascii=False, default=str).encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def move_row(lp: dict[str, Any], p: int, change: Callable[[float], float]) -> None:
    """Apply ``change`` to row ``p``: its logprob and its alternatives together."""
    values, tops = lp["token_logprobs"], lp["top_logprobs"]
    if isinstance(values[p], int | float):
        values[p] = change(values[p])
    top = tops[p] if p < len(tops) else None
    if isinstance(top, dict):
        tops[p] = {k: change(v) if isinstance(v, int | float) else v for k, v in top.items()}


def room_above(lp: dict[str, Any], p: int) -> float:
    """How far row ``p`` may move up and stay a distribution: no logprob above 0, no mass
    above 1."""
    tokens, values, tops = lp.get("tokens") or [], lp["token_logprobs"], lp["top_logprobs"]
    top = tops[p] if p < len(tops) and isinstance(tops[p], dict) else {}
    listed = [v for v in top.values() if isinstance(v, int | float) and math.isfinite(v)]
    own = values[p] if isinstance(values[p], int | float) and math.isfinite(values[p]) else None
    highest = max([*listed, *([own] if own is not None else [])], default=None)
    if highest is None:
        return 0.0
    if own is not None and not (p < len(tokens) and tokens[p] in top):
        listed.append(own)
    return min(-highest, -math.log(sum(math.exp(v) for v in listed)))


def prompt_rows(request: dict[str, Any], lp: dict[str, Any]) -> range:
    """The echoed prompt rows of a choice (row 0 has nothing before it; generated rows last)."""
    max_tokens = request.get("max_tokens")
    generated = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else 0
    return range(1, len(lp["token_logprobs"]) - generated)
