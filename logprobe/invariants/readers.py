"""Small, forgiving readers of response JSON shared by the check modules.

They never raise on a malformed response: shape problems are the SHAPE
checks' job, so the other checks read what is there and skip what is not.
"""

from __future__ import annotations

from typing import Any


def readable(token: Any) -> bool:
    """A token string that names one token: servers decode partial UTF-8 pieces as "" or
    with U+FFFD, and such strings of different tokens collide (as keys, and in text)."""
    return isinstance(token, str) and bool(token) and "\ufffd" not in token


def choices(response: Any) -> list[dict[str, Any]]:
    """The choices, sorted by ``index`` as lm-eval sorts them; [] when unreadable."""
    if not isinstance(response, dict):
        return []
    raw = response.get("choices")
    if not isinstance(raw, list):
        return []
    items = [c for c in raw if isinstance(c, dict)]
    try:
        return sorted(items, key=lambda c: c.get("index", 0))
    except TypeError:
        return items


def completion_logprobs(choice: dict[str, Any]) -> dict[str, Any] | None:
    """The completions-shaped logprobs object of a choice, or None."""
    logprobs = choice.get("logprobs")
    if isinstance(logprobs, dict) and isinstance(logprobs.get("token_logprobs"), list):
        return logprobs
    return None


def token_logprobs(response: Any, index: int | None = None) -> list[Any] | None:
    """The completions token_logprobs of choice ``index`` (by position in ``choices``), or
    of every choice joined when ``index`` is None; None when one of them has none."""
    found = choices(response)
    picked = found if index is None else found[index:index + 1]
    rows = [completion_logprobs(c) for c in picked]
    if not rows or any(r is None for r in rows):
        return None
    return [v for r in rows for v in r["token_logprobs"]]  # type: ignore[index]


def chat_content(choice: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The chat ``logprobs.content`` list of a choice, or None."""
    logprobs = choice.get("logprobs")
    if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
        return [e for e in logprobs["content"] if isinstance(e, dict)]
    return None


def usage(response: Any, key: str) -> int | None:
    if isinstance(response, dict) and isinstance(response.get("usage"), dict):
        value = response["usage"].get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def completions_k(request: dict[str, Any]) -> int | None:
    """``logprobs`` of a completions request, when it asks for logprobs at all."""
    k = request.get("logprobs")
    if isinstance(k, int) and not isinstance(k, bool) and k >= 0:
        return k
    return None


def chat_k(request: dict[str, Any]) -> int:
    k = request.get("top_logprobs")
    return k if isinstance(k, int) and not isinstance(k, bool) else 0


def asks_chat_logprobs(request: dict[str, Any]) -> bool:
    return request.get("logprobs") is True


def prompt_count(request: dict[str, Any]) -> int:
    """How many prompts a completions request carries (a string, ids, or a list of either)."""
    prompt = request.get("prompt")
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], str | list):
        return len(prompt)
    return 1


def generated_count(choice: dict[str, Any], prompt_tokens: int | None, echo: bool) -> int | None:
    """How many logprob entries belong to generated tokens."""
    logprobs = completion_logprobs(choice)
    if logprobs is None:
        content = chat_content(choice)
        return None if content is None else len(content)
    total = len(logprobs["token_logprobs"])
    if not echo:
        return total
    if prompt_tokens is None:
        return None
    return total - prompt_tokens
