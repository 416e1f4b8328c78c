"""Values wrong, or legally different: positive, NaN, after temperature, and the
numerics a GPU shows (drift, offsets, rounding, jitter, a softmax at another temperature)."""

from __future__ import annotations

import math
from typing import Any

from logprobe.faults.body import (
    chat_entries,
    completions,
    each_completion_logprobs,
    echoed_completions,
    move_row,
    prompt_rows,
    room_above,
    unit_hash,
)
from logprobe.faults.registry import fault
from logprobe.invariants.readers import choices


def _first_completion_value(body: Any) -> tuple[dict[str, Any], int] | None:
    for _, lp in each_completion_logprobs(body):
        for p, value in enumerate(lp["token_logprobs"]):
            if isinstance(value, float | int):
                return lp, p
    return None


def _set_first_value(body: Any, value: float) -> Any:
    found = _first_completion_value(body)
    if found is not None:
        lp, p = found
        lp["token_logprobs"][p] = value
        top = lp["top_logprobs"][p]
        token = lp["tokens"][p]
        if isinstance(top, dict) and token in top:
            top[token] = value
    for choice in choices(body):
        content = chat_entries(choice)
        if content:
            content[0]["logprob"] = value
            for alt in content[0].get("top_logprobs") or []:
                if alt.get("token") == content[0].get("token"):
                    alt["logprob"] = value
    return body


@fault("positive-logprob",
       "a logprob of +0.5",
       "(synthetic)",
       ("VAL-001",))
def positive_logprob(path: str, request: dict[str, Any], body: Any) -> Any:
    return _set_first_value(body, 0.5)


@fault("nan-literal",
       "a NaN literal where a logprob should be",
       "fp16 overflow in servers",
       ("VAL-001",))
def nan_literal(path: str, request: dict[str, Any], body: Any) -> Any:
    return _set_first_value(body, math.nan)  # serialised as the bare NaN literal


@fault("logprobs-after-temperature",
       "logprobs computed after temperature scaling",
       "SGLang, TGI (a legal mode: reported as INFO, never a failure)",
       ("SMP-003",),
       fatal=False,
       shows=("SMP-003", "processed"),
       properties=False)
def logprobs_after_temperature(path: str, request: dict[str, Any], body: Any) -> Any:
    """Return temperature-scaled, renormalised logprobs (SGLang, TGI): legal, and INFO.

    Like such servers: a temperature below 1e-5 is greedy (values untouched), and
    values are floored at -9999. Alternatives are renormalised by position, never
    through their token strings, which can repeat (partial characters).
    """
    t = request.get("temperature")
    if not isinstance(t, int | float) or t < 1e-5 or t == 1:
        return body

    def rescale(values: list[float]) -> tuple[list[float], float]:
        scaled = [v / t for v in values]
        top = max(scaled)
        norm = top + math.log(sum(math.exp(v - top) for v in scaled))
        return [max(v - norm, -9999.0) for v in scaled], norm

    for _, lp in each_completion_logprobs(body):
        for p, (token, top) in enumerate(zip(lp["tokens"], lp["top_logprobs"], strict=False)):
            if isinstance(top, dict) and top:
                new, _ = rescale(list(top.values()))
                lp["top_logprobs"][p] = dict(zip(top, new, strict=True))
                if token in top:
                    lp["token_logprobs"][p] = lp["top_logprobs"][p][token]
    for choice in choices(body):
        for entry in chat_entries(choice):
            alts = [a for a in entry.get("top_logprobs") or [] if isinstance(a, dict)]
            if not alts:
                continue
            new, norm = rescale([a["logprob"] for a in alts])
            for alt, value in zip(alts, new, strict=True):
                alt["logprob"] = value
            if isinstance(entry.get("logprob"), float | int):
                entry["logprob"] = max(entry["logprob"] / t - norm, -9999.0)
    return body


GPU_DRIFT_MAX = 0.2  # nats: above the largest bf16 drift measured (0.167)


GPU_DRIFT_MIN = 0.05


@fault("gpu-numerics",
       "echoed prompt rows drift by up to 0.2 nats on a third of the rows, "
       "as bf16 prefill drifts from decode on a GPU",
       "every correct bf16/fp16 GPU "
       "deployment (measured on an H200: ENVIRONMENT.md); must NOT fail the run",
       ("NUM-002",),
       fatal=False,
       shows=("NUM-002", "drift over"),
       properties=False,
       when=echoed_completions)
def gpu_numerics(path: str, request: dict[str, Any], body: Any) -> Any:
    """Echoed prompt rows drift the way a bf16 GPU prefill drifts from decode (ENVIRONMENT.md):
    on about a third of the rows, the row's logprob and its alternatives move together by 0.05
    to 0.2 nats, never above 0 nor past a probability mass of 1. Generated rows are left
    alone. The drift of a row is a function of the tokens up to it, as a deterministic
    kernel's is: prompts sharing a prefix drift alike there. A correct deployment looks like
    this: the suite must not fail it."""
    for _, lp in each_completion_logprobs(body):
        tokens = lp.get("tokens") or []
        for p in prompt_rows(request, lp):
            if unit_hash("row", tokens[:p + 1]) >= 1 / 3:
                continue
            # |drift| in [0.05, 0.2]: the drifting rows of the measurement were the large ones
            magnitude = GPU_DRIFT_MIN + unit_hash("drift", tokens[:p + 1]) * (GPU_DRIFT_MAX - GPU_DRIFT_MIN)
            shift = magnitude if unit_hash("sign", tokens[:p + 1]) < 0.5 else -magnitude
            if shift > room_above(lp, p):
                shift = -shift  # a row near certainty can only drift down
            move_row(lp, p, lambda v, d=shift: v + d)
    return body


@fault("echo-offset",
       "echoed prompt logprobs 0.05 nats below generation's",
       "(synthetic: a prefill normaliser off by a constant)",
       ("NUM-001",),
       properties=False,
       when=echoed_completions)
def echo_offset(path: str, request: dict[str, Any], body: Any) -> Any:
    """Every echoed prompt row 0.05 nats lower than generation gives (a prefill path off by a
    constant, e.g. a wrong normaliser): inside any per-token bound, caught by the run's median."""
    for _, lp in each_completion_logprobs(body):
        for p in prompt_rows(request, lp):
            move_row(lp, p, lambda v: v - 0.05)
    return body


@fault("echo-rounded",
       "echoed prompt logprobs rounded to one decimal",
       "(synthetic)",
       ("NUM-001",),
       properties=False,
       when=echoed_completions)
def echo_rounded(path: str, request: dict[str, Any], body: Any) -> Any:
    """Echoed prompt logprobs rounded to one decimal (a float formatting shortcut)."""
    for _, lp in each_completion_logprobs(body):
        for p in prompt_rows(request, lp):
            move_row(lp, p, lambda v: min(round(v, 1), 0.0))
    return body


@fault("logprob-jitter",
       "every completions logprob moved by up to 0.05 nats, independently "
       "in each request",
       "(synthetic)",
       ("NUM-001",),
       properties=False,
       when=completions)
def logprob_jitter(path: str, request: dict[str, Any], body: Any) -> Any:
    """Every completions row moves by its own offset in [-0.05, 0.05], independently in every
    request: echo and generation disagree by up to 0.1 nats everywhere."""
    for choice, lp in each_completion_logprobs(body):
        for p in range(len(lp["token_logprobs"])):
            shift = min((unit_hash("jitter", request, choice.get("index"), p) * 2 - 1) * 0.05,
                        room_above(lp, p))
            move_row(lp, p, lambda v, d=shift: v + d)
    return body


SCALE = 1 / 0.7


@fault("softmax-scaled",
       "every logprob multiplied by 1/0.7, consistently everywhere (a "
       "softmax taken at temperature 0.7 where raw logprobs are claimed)",
       "(synthetic: "
       "what only a reference model sees; no self-consistency check can)",
       ("ORACLE-001",),
       properties=False,
       on=("json", "chunk"))
def softmax_scaled(path: str, request: dict[str, Any], body: Any) -> Any:
    """Every logprob times 1/0.7, everywhere alike: the log-softmax at temperature 0.7 (up to
    its normaliser), values still <= 0, sorted and mutually consistent."""
    def scale(value: Any) -> Any:
        return value * SCALE if isinstance(value, float | int) and not isinstance(value, bool) \
            else value

    for _, lp in each_completion_logprobs(body):
        lp["token_logprobs"] = [scale(v) for v in lp["token_logprobs"]]
        lp["top_logprobs"] = [{k: scale(v) for k, v in top.items()} if isinstance(top, dict)
                              else top for top in lp.get("top_logprobs") or []]
    for choice in choices(body):
        for entry in chat_entries(choice):
            entry["logprob"] = scale(entry.get("logprob"))
            for alt in entry.get("top_logprobs") or []:
                if isinstance(alt, dict):
                    alt["logprob"] = scale(alt.get("logprob"))
    return body
