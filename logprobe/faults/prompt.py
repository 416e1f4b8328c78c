"""prompt_logprobs (vLLM's extension) and scoring by logit_bias."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from logprobe.faults.body import each_completion_logprobs, is_completions
from logprobe.faults.registry import Stateful, fault
from logprobe.invariants.readers import choices


def _each_prompt_logprobs(path: str, request: dict[str, Any], body: Any) -> Iterator[
        dict[str, Any]]:
    """Every choice whose prompt_logprobs came back as a list, on a request that asked."""
    if is_completions(path) and request.get("prompt_logprobs") is not None:
        for choice in choices(body):
            if isinstance(choice.get("prompt_logprobs"), list):
                yield choice


@fault("prompt-rows-shifted",
       "prompt_logprobs: each prompt token given the next "
       "position's entry",
       "the echo offset (llama-cpp-python 0.3.36, ggml-org/llama.cpp"
       "#27174) in prompt_logprobs; vllm-project/vllm#42019 (stale prefix-cache rows)",
       ("PROMPT-002",),
       properties=False)
def prompt_rows_shifted(path: str, request: dict[str, Any], body: Any) -> Any:
    """Each prompt token given the next position's entry (the last keeps its own): the
    off-by-one that ECHO-001 and LMEVAL-002 catch in echo, here in prompt_logprobs."""
    for choice in _each_prompt_logprobs(path, request, body):
        rows = choice["prompt_logprobs"]
        choice["prompt_logprobs"] = [rows[0], *rows[2:], rows[-1]] if len(rows) > 2 else rows
    return body


def _shares_a_prefix(a: Any, b: Any) -> bool:
    """Two prompts (texts or token ids) whose first 40 characters or 10 ids agree."""
    n = 40 if isinstance(a, str) else 10
    return type(a) is type(b) and len(a) >= n and len(b) >= n and a[:n] == b[:n]


@fault("prompt-prefix-shifted",
       "prompt_logprobs of a prompt sharing its start with ones "
       "scored before, every row 0.1 nats lower per earlier sighting",
       "vllm-project/vllm#42019 (stale "
       "prefix-cache rows)",
       ("CONS-004",),
       properties=False)
class PromptPrefixShifted(Stateful):
    """prompt_logprobs of a prompt that shares its start with ones scored before come back
    0.1 nats lower on every row per earlier sighting (a reused cache block read with other
    numerics each time): tokens moved together, two sightings apart by 0.1 per token."""

    def __init__(self) -> None:
        self.scored: list[Any] = []  # prompts seen

    def __call__(self, path: str, request: dict[str, Any], body: Any) -> Any:
        prompt = request.get("prompt")
        if not isinstance(prompt, str | list):
            return body
        seen = sum(_shares_a_prefix(prompt, p) for p in self.scored)
        for choice in _each_prompt_logprobs(path, request, body):
            self.scored.append(prompt)
            for row in choice["prompt_logprobs"][1:] if seen else []:
                for value in row.values() if isinstance(row, dict) else []:
                    if isinstance(value, dict) and isinstance(value.get("logprob"), float):
                        value["logprob"] -= 0.1 * seen
        return body


@fault("prompt-logprobs-null",
       "prompt_logprobs of [null] whatever the prompt's length",
       "vllm-project/vllm-metal#680",
       ("PROMPT-001",))
def prompt_logprobs_null(path: str, request: dict[str, Any], body: Any) -> Any:
    """prompt_logprobs of [null] whatever the prompt's length."""
    for choice in _each_prompt_logprobs(path, request, body):
        choice["prompt_logprobs"] = [None]
    return body


@fault("logprobs-after-bias",
       "a token forced with logit_bias reported at its post-bias "
       "logprob (about 0), in a server whose other logprobs are raw",
       "lm-eval PR #4012's concern: a server reporting processed values scores every "
       "forced token alike",
       ("SMP-005",),
       properties=False)
def logprobs_after_bias(path: str, request: dict[str, Any], body: Any) -> Any:
    """With a forcing logit_bias, each generated position reported after the bias, as
    processed logprobs report it: the forced token at about 0 (the bias dominates the
    softmax), every other alternative 100 nats lower than it was."""
    bias = request.get("logit_bias")
    if not (is_completions(path) and isinstance(bias, dict) and any(
            isinstance(v, int | float) and v >= 50 for v in bias.values())):
        return body
    for _choice, lp in each_completion_logprobs(body):
        values, tokens = lp.get("token_logprobs") or [], lp.get("tokens") or []
        start = len(values) - (len(tokens) if not request.get("echo") else 0)
        for i in range(max(start, 0), len(values)):
            values[i] = -1e-4
            tops = lp.get("top_logprobs") or []
            if i < len(tops) and isinstance(tops[i], dict) and i < len(tokens):
                tops[i] = {t: -1e-4 if t == tokens[i] else v - 100.0
                           for t, v in tops[i].items()}
    return body
