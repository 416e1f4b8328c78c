"""Text, offsets and usage that disagree with the tokens."""

from __future__ import annotations

import copy
from typing import Any

from logprobe.faults.body import each_completion_logprobs, is_completions
from logprobe.faults.registry import fault


@fault("tokens-past-stop",
       "a choice ended by a stop string keeps two more tokens after it, "
       "with their logprobs",
       "vllm-project/vllm#47616 (speculative decoding), "
       "NVIDIA/TensorRT-LLM#18190",
       ("TXT-007",))
def tokens_past_stop(path: str, request: dict[str, Any], body: Any) -> Any:
    """A choice ended by a stop string keeps two more tokens after it, with their logprobs
    (the last two entries again), as speculative decoding's accepted batch left them."""
    if not (is_completions(path) and request.get("stop")):
        return body
    for choice, lp in each_completion_logprobs(body):
        tokens = lp.get("tokens") or []
        if choice.get("finish_reason") != "stop" or len(tokens) < 2:
            continue
        for key in ("tokens", "token_logprobs", "top_logprobs"):
            if isinstance(lp.get(key), list):
                lp[key] += copy.deepcopy(lp[key][-2:])
        offsets = lp.get("text_offset")
        if isinstance(offsets, list) and offsets and isinstance(offsets[-1], int):
            for p in range(len(offsets), len(tokens)):
                offsets.append(offsets[p - 1] + len(tokens[p - 1]))
    return body


@fault("text-offset-drift",
       "text_offset drifts from the token lengths",
       "(synthetic)",
       ("TXT-003",))
def text_offset_drift(path: str, request: dict[str, Any], body: Any) -> Any:
    for _, lp in each_completion_logprobs(body):
        if isinstance(lp.get("text_offset"), list):
            lp["text_offset"] = [o + p for p, o in enumerate(lp["text_offset"])]
    return body


@fault("usage-mismatch",
       "usage.completion_tokens one more than the logprob entries",
       "(synthetic)",
       ("CNT-004",))
def usage_mismatch(path: str, request: dict[str, Any], body: Any) -> Any:
    usage = body.get("usage") if isinstance(body, dict) else None
    if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
        usage["completion_tokens"] += 1
        if isinstance(usage.get("total_tokens"), int):
            usage["total_tokens"] += 1
    return body
