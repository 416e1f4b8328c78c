"""The same prompt scored two ways, answered differently: stale prefix-cache rows, batch
noise, shifted repeats and lists, choices given each other's logprobs."""

from __future__ import annotations

import json
from typing import Any

from logprobe.faults.body import each_completion_logprobs, is_completions, move_row, prompt_rows, unit_hash
from logprobe.faults.registry import Stateful, fault
from logprobe.invariants.readers import choices


@fault("list-rows-swapped",
       "a list of prompts answered with two choices' logprobs "
       "exchanged",
       "sgl-project/sglang#1176 (choices' indices misassigned)",
       ("CONS-001",),
       properties=False)
def list_rows_swapped(path: str, request: dict[str, Any], body: Any) -> Any:
    """A list of prompts answered with the first two choices' logprobs exchanged (choices
    given the wrong index's values)."""
    found = choices(body)
    if is_completions(path) and isinstance(request.get("prompt"), list) and len(found) >= 2 \
            and not isinstance(request["prompt"][0], int):
        found[0]["logprobs"], found[1]["logprobs"] = found[1].get("logprobs"), \
            found[0].get("logprobs")
    return body


@fault("n-choices-logprobs-rotated",
       "each choice of n > 1 given the next choice's "
       "logprobs, its tokens and text kept",
       "sgl-project/sglang#1176 (choices' indices "
       "misassigned)",
       ("CONS-003",))
def n_choices_logprobs_rotated(path: str, request: dict[str, Any], body: Any) -> Any:
    """Each choice of an n > 1 request given the next choice's token_logprobs and
    top_logprobs, its own tokens and text kept (logprobs gathered under another index)."""
    n = request.get("n")
    found = [lp for _, lp in each_completion_logprobs(body)]
    if not (is_completions(path) and isinstance(n, int) and n > 1 and len(found) > 1
            and not request.get("echo")):
        return body
    moved = [(lp["token_logprobs"], lp.get("top_logprobs")) for lp in found]
    for lp, (values, tops) in zip(found, moved[1:] + moved[:1], strict=True):
        lp["token_logprobs"], lp["top_logprobs"] = values, tops
    return body


@fault("stale-prefix-cache",
       "an echoed prompt seen before comes back with its rows "
       "0.7 nats off per earlier sighting",
       "vllm-project/vllm#3251, #8268 (stale prefix-cache rows)",
       ("CONS-001",))
class StalePrefixCache(Stateful):
    """An echoed text prompt seen before comes back with its cached rows off: by 0.7 nats
    the second time, 1.4 the third (each reuse of a stale or uninitialised block reads other
    garbage); the first sighting is served correctly."""

    def __init__(self) -> None:
        self.sightings: dict[str, int] = {}  # prompts seen, and how often

    def __call__(self, path: str, request: dict[str, Any], body: Any) -> Any:
        prompt = request.get("prompt")
        if not (is_completions(path) and request.get("echo") and isinstance(prompt, str)):
            return body
        seen = self.sightings.get(prompt, 0)
        self.sightings[prompt] = seen + 1
        for _, lp in each_completion_logprobs(body):
            values = lp["token_logprobs"]
            for p in range(1, max(1, len(values) - 1)):  # the prompt's rows, not the generated one
                if seen and isinstance(values[p], float | int):
                    values[p] = min(0.0, values[p] - 0.7 * seen)
        return body


@fault("batch-noise",
       "on one echoed prompt row in ten, chosen afresh per request and per "
       "prompt of a list, the row moves down by up to 0.15 nats",
       "every GPU deployment "
       "without batch-invariant kernels (vLLM docs/features/batch_invariance.md); must NOT "
       "fail the run",
       ("CONS-005",),
       fatal=False,
       shows=("CONS-005", "consistency drift"),
       properties=False)
class BatchNoise(Stateful):
    """Batch nondeterminism as a GPU without batch-invariant kernels shows it: on about one
    echoed prompt row in ten, the row and its alternatives move down together by 0.005 to
    0.15 nats, the rows chosen afresh for every request (each lands in another batch) and for
    each prompt of a list. Never above 0, never past a mass of 1. It must not fail the run."""

    def __init__(self) -> None:
        self.arrivals = 0  # requests seen: each meets its own batch

    def __call__(self, path: str, request: dict[str, Any], body: Any) -> Any:
        if not (is_completions(path) and request.get("echo")):
            return body
        self.arrivals += 1
        for index, (_, lp) in enumerate(each_completion_logprobs(body)):
            for p in prompt_rows(request, lp):
                key = ("batch", self.arrivals, index, p)
                if unit_hash(*key, "row") < 0.1:
                    shift = 0.005 + unit_hash(*key, "size") * 0.145
                    move_row(lp, p, lambda v, d=shift: v - d)
        return body


@fault("repeat-shifted",
       "an echoed prompt seen before comes back with every prompt row 0.2 "
       "nats lower",
       "vllm-project/vllm#42019 (stale prefix-cache rows)",
       ("CONS-004",),
       properties=False)
class RepeatShifted(Stateful):
    """An echoed prompt seen before comes back with every prompt row 0.2 nats lower (a cache
    row reused with other numerics): each token stays under the per-token bound, the median
    does not."""

    def __init__(self) -> None:
        self.scored: dict[str, int] = {}  # prompts answered, and how often

    def __call__(self, path: str, request: dict[str, Any], body: Any) -> Any:
        prompt = request.get("prompt")
        one_prompt = isinstance(prompt, str) or (isinstance(prompt, list) and bool(prompt) and all(
            isinstance(i, int) for i in prompt))
        if not (is_completions(path) and request.get("echo") and one_prompt):
            return body
        key = json.dumps(prompt)
        seen = self.scored.get(key, 0)
        self.scored[key] = seen + 1
        if seen:
            for _, lp in each_completion_logprobs(body):
                for p in prompt_rows(request, lp):
                    move_row(lp, p, lambda v: v - 0.2)
        return body


@fault("list-shifted",
       "in a list of prompts, every prompt row of the second and later "
       "prompts 0.2 nats lower",
       "vllm-project/vllm#11778 (batch-dependent numerics)",
       ("CONS-004",),
       properties=False)
def list_shifted(path: str, request: dict[str, Any], body: Any) -> Any:
    """A list of prompts answered with every prompt row after the first prompt's 0.2 nats lower
    (batch-dependent numerics beyond noise)."""
    prompt = request.get("prompt")
    if not (is_completions(path) and request.get("echo") and isinstance(prompt, list)
            and len(prompt) > 1 and isinstance(prompt[0], str | list)):
        return body
    for choice, lp in each_completion_logprobs(body):
        if choice.get("index"):
            for p in prompt_rows(request, lp):
                move_row(lp, p, lambda v: v - 0.2)
    return body
