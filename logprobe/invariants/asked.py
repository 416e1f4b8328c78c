"""What a request asked for: the ``when`` predicates of exchange checks.

Each takes the path a request was sent to and the request as sent, and says
whether a check applies to its response. Kept apart from the checks so that
every module speaks of requests in the same words.
"""

from __future__ import annotations

from typing import Any


def chat(path: str, request: dict[str, Any]) -> bool:
    """A chat request."""
    return path.rstrip("/").endswith("/chat/completions")


def completions(path: str, request: dict[str, Any]) -> bool:
    """A completions request."""
    return path.rstrip("/").endswith("/completions") and not chat(path, request)


def streamed(path: str, request: dict[str, Any]) -> bool:
    """A streamed request."""
    return bool(request.get("stream")) and (chat(path, request) or completions(path, request))


def streamed_logprobs(path: str, request: dict[str, Any]) -> bool:
    """A streamed request with logprobs asked."""
    return streamed(path, request) and (
        request.get("logprobs") is True if chat(path, request)
        else request.get("logprobs") is not None)


def chat_body(path: str, request: dict[str, Any]) -> bool:
    """A chat response (not streamed)."""
    return chat(path, request) and not request.get("stream")


def completions_body(path: str, request: dict[str, Any]) -> bool:
    """A completions response (not streamed)."""
    return completions(path, request) and not request.get("stream")


def chat_logprobs(path: str, request: dict[str, Any]) -> bool:
    """A chat response with logprobs asked."""
    return chat_body(path, request) and request.get("logprobs") is True


def completions_logprobs(path: str, request: dict[str, Any]) -> bool:
    """A completions response with logprobs asked."""
    return completions_body(path, request) and request.get("logprobs") is not None


def logprobs(path: str, request: dict[str, Any]) -> bool:
    """Any response with logprobs asked."""
    return chat_logprobs(path, request) or completions_logprobs(path, request)


def no_logprobs(path: str, request: dict[str, Any]) -> bool:
    """A response with logprobs not asked."""
    return (chat_body(path, request) and request.get("logprobs") is not True) or \
        (completions_body(path, request) and request.get("logprobs") is None)


def echo(path: str, request: dict[str, Any]) -> bool:
    """A completions response with echo and logprobs."""
    return completions_logprobs(path, request) and bool(request.get("echo"))


def several_choices(path: str, request: dict[str, Any]) -> bool:
    """A completions response with n > 1 and logprobs."""
    n = request.get("n")
    return completions_logprobs(path, request) and isinstance(n, int) and n > 1


def prompt_logprobs(path: str, request: dict[str, Any]) -> bool:
    """A completions response (not streamed) with vLLM's prompt_logprobs asked."""
    k = request.get("prompt_logprobs")
    return completions_body(path, request) and isinstance(k, int) and not isinstance(k, bool)
