"""Completions logprobs dropped or reshaped: null, missing, the chat shape, echo ignored or
shifted (the defects that make lm-eval die or score at chance)."""

from __future__ import annotations

from typing import Any

from logprobe.faults.body import completions, each_completion_logprobs, echoed_completions, is_completions
from logprobe.faults.registry import fault
from logprobe.invariants.readers import choices


@fault("null-logprobs",
       "completions logprobs: null whatever was asked",
       "LMDeploy >= 0.13 (lm-eval: TypeError: 'NoneType' object is not subscriptable)",
       ("SHAPE-002", "LMEVAL-001"),
       looks=(("SHAPE-002", "logprobs: null"),))
def null_logprobs(path: str, request: dict[str, Any], body: Any) -> Any:
    if is_completions(path) and request.get("logprobs") is not None:
        for choice in choices(body):
            choice["logprobs"] = None
    return body


@fault("missing-logprobs",
       "the completions logprobs key left out",
       "TGI, transformers serve",
       ("SHAPE-002", "LMEVAL-001"),
       looks=(("SHAPE-002", "no logprobs key"),))
def missing_logprobs(path: str, request: dict[str, Any], body: Any) -> Any:
    if is_completions(path) and request.get("logprobs") is not None:
        for choice in choices(body):
            choice.pop("logprobs", None)
    return body


@fault("chat-shape-on-completions",
       "completions logprobs in the chat shape {content: [...]}",
       "llama.cpp server (EleutherAI/lm-evaluation-harness#4158)",
       ("SHAPE-002", "LMEVAL-001"),
       looks=(("SHAPE-002", "the chat logprobs shape"),
              ("SHAPE-002", "'tokens' is a required property"),
              ("STR-002", "'tokens' is a required property"),
              ("SHAPE-005", "'tokens' is a required property"),
              ("LMEVAL-001", "KeyError: 'token_logprobs'")),
       when=completions)
def chat_shape_on_completions(path: str, request: dict[str, Any], body: Any) -> Any:
    for choice, lp in each_completion_logprobs(body):
        content = []
        for token, value, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"],
                                     strict=False):
            alts = [{"token": t, "logprob": v, "bytes": list(t.encode())}
                    for t, v in (top or {}).items()]
            content.append({"token": token, "logprob": value, "bytes": list(token.encode()),
                            "top_logprobs": alts})
        choice["logprobs"] = {"content": content}
    return body


def _prompt_token_count(body: Any) -> int | None:
    usage = body.get("usage") if isinstance(body, dict) else None
    value = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return value if isinstance(value, int) else None


@fault("echo-ignored",
       "echo ignored: only the generated token's logprobs come back",
       "ggml-org/llama.cpp#27174 (lm-eval scores at chance, silently)",
       ("ECHO-001", "LMEVAL-001", "LMEVAL-002"),
       looks=(("ECHO-001", "does not start with the prompt"),
              ("ECHO-001", "cannot cover")),
       when=echoed_completions)
def echo_ignored(path: str, request: dict[str, Any], body: Any) -> Any:
    """Answer as if echo were false: only the generated tokens' logprobs and text."""
    cs = choices(body)
    prompt_tokens = _prompt_token_count(body)
    max_tokens = request.get("max_tokens")
    for choice, lp in each_completion_logprobs(body):
        if len(cs) == 1 and prompt_tokens is not None:
            keep = max(0, len(lp["token_logprobs"]) - prompt_tokens)
        else:
            keep = max_tokens if isinstance(max_tokens, int) else 1
        start = len(lp["token_logprobs"]) - keep
        for key in ("tokens", "token_logprobs", "top_logprobs"):
            lp[key] = lp[key][start:]
        offsets = lp.get("text_offset") or []
        base = offsets[start] if start < len(offsets) else 0
        lp["text_offset"] = [o - base for o in offsets[start:]]
        text = choice.get("text")
        if isinstance(text, str):
            choice["text"] = text[base:]
    return body


@fault("echo-shifted",
       "echo prompt logprobs shifted by one position",
       "llama-cpp-python 0.3.36",
       ("LMEVAL-002",),
       properties=False)
def echo_shifted(path: str, request: dict[str, Any], body: Any) -> Any:
    """Score each prompt token with the next position's values (llama-cpp-python)."""
    if not (is_completions(path) and request.get("echo")):
        return body
    for _, lp in each_completion_logprobs(body):
        if len(lp["token_logprobs"]) < 3:
            continue
        for key in ("token_logprobs", "top_logprobs"):
            values = lp[key]
            lp[key] = [values[0], *values[2:], values[-1]]
    return body
