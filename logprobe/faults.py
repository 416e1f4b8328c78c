"""Named ways to break a server's responses, each modelled on a real defect.

A fault is data plus pure transforms: of the request before it is forwarded,
of a JSON response body, of each SSE event, or of the raw status and body.
The fault-injection proxy applies them to a real server's traffic, and the
project's tests apply the same functions to recorded responses, so every
check is shown to fail on the defect it exists for. ``trips`` names the
invariants that must report the fault; a fault with ``fatal=False`` must be
reported without failing the run.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from logprobe.invariants.access import chat_content, choices, completion_logprobs
from logprobe.invariants.text import as_byte_level_piece

JsonHook = Callable[[str, dict[str, Any], Any], Any]
RequestHook = Callable[[str, dict[str, Any]], dict[str, Any]]
RawHook = Callable[[str, dict[str, Any], int, bytes], tuple[int, bytes]]
# A whole stream's parsed data payloads ("[DONE]" excluded), for faults that merge chunks.
StreamHook = Callable[[str, dict[str, Any], list[Any]], list[Any]]


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    seen_in: str
    trips: tuple[str, ...]
    fatal: bool = True
    # A non-fatal fault must still be seen: (invariant, words its finding carries).
    shows: tuple[str, str] | None = None
    # Inside the property suite's request space (no non-streamed twin of a stream, no
    # teacher forcing beyond a sampled n > 1, no temperature pairs or prompt lists there):
    # the properties alone must catch it.
    properties: bool = True
    request: RequestHook | None = None
    json: JsonHook | None = None
    chunk: JsonHook | None = None
    stream: StreamHook | None = None
    raw: RawHook | None = None
    # A request the server dies of: the proxy answers it with a 500 and exits at once
    # (every later connection refused), as a dead engine's process does.
    dies: Callable[[str, dict[str, Any]], bool] | None = None
    # The defect's signature in a report: (invariant, words its message carries). A run's
    # failures of that kind are grouped as this known defect (logprobe.report.defects),
    # named with where it was seen; the kill matrix proves each fault's run names it.
    looks: tuple[tuple[str, str], ...] = ()


def _is_completions(path: str) -> bool:
    return path.rstrip("/").endswith("/completions") and "/chat/" not in path


def _is_chat(path: str) -> bool:
    return path.rstrip("/").endswith("/chat/completions")


def _each_completion_logprobs(body: Any) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(choice, its completions logprobs) for every choice that has them."""
    for choice in choices(body):
        lp = completion_logprobs(choice)
        if lp is not None:
            yield choice, lp


def _chat_content(choice: dict[str, Any]) -> list[dict[str, Any]]:
    return chat_content(choice) or []


# --- completions logprobs dropped or reshaped -------------------------------------------

def null_logprobs(path: str, request: dict[str, Any], body: Any) -> Any:
    if _is_completions(path) and request.get("logprobs") is not None:
        for choice in choices(body):
            choice["logprobs"] = None
    return body


def missing_logprobs(path: str, request: dict[str, Any], body: Any) -> Any:
    if _is_completions(path) and request.get("logprobs") is not None:
        for choice in choices(body):
            choice.pop("logprobs", None)
    return body


def chat_shape_on_completions(path: str, request: dict[str, Any], body: Any) -> Any:
    if not _is_completions(path):
        return body
    for choice, lp in _each_completion_logprobs(body):
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


def echo_ignored(path: str, request: dict[str, Any], body: Any) -> Any:
    """Answer as if echo were false: only the generated tokens' logprobs and text."""
    if not (_is_completions(path) and request.get("echo")):
        return body
    cs = choices(body)
    prompt_tokens = _prompt_token_count(body)
    max_tokens = request.get("max_tokens")
    for choice, lp in _each_completion_logprobs(body):
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


def echo_shifted(path: str, request: dict[str, Any], body: Any) -> Any:
    """Score each prompt token with the next position's values (llama-cpp-python)."""
    if not (_is_completions(path) and request.get("echo")):
        return body
    for _, lp in _each_completion_logprobs(body):
        if len(lp["token_logprobs"]) < 3:
            continue
        for key in ("token_logprobs", "top_logprobs"):
            values = lp[key]
            lp[key] = [values[0], *values[2:], values[-1]]
    return body


# --- alternatives ------------------------------------------------------------------------

def unsorted_chat_top(path: str, request: dict[str, Any], body: Any) -> Any:
    if _is_chat(path):
        for choice in choices(body):
            for entry in _chat_content(choice):
                alts = entry.get("top_logprobs")
                if isinstance(alts, list) and len(alts) >= 3:
                    entry["top_logprobs"] = list(reversed(alts))
    return body


def sampled_dropped(path: str, request: dict[str, Any], body: Any) -> Any:
    """Completions top_logprobs without the sampled token (only the other alternatives)."""
    if not _is_completions(path):
        return body
    for _, lp in _each_completion_logprobs(body):
        for p, (token, top) in enumerate(zip(lp["tokens"], lp["top_logprobs"], strict=False)):
            if isinstance(top, dict) and token in top:
                lp["top_logprobs"][p] = {k: v for k, v in top.items() if k != token}
    return body


def tokens_show_top_1(path: str, request: dict[str, Any], body: Any) -> Any:
    """Each position names its most likely alternative where another token was sampled,
    the sampled token's logprob and the text kept."""
    for _, lp in _each_completion_logprobs(body):
        tokens = lp.get("tokens") or []
        for p, top in enumerate(lp.get("top_logprobs") or []):
            if isinstance(top, dict) and top and p < len(tokens):
                tokens[p] = max(top, key=lambda k: top[k] if isinstance(top[k], float | int)
                                else -math.inf)
    for choice in choices(body):
        for entry in _chat_content(choice):
            alts = [a for a in entry.get("top_logprobs") or [] if isinstance(a, dict)]
            if alts:
                entry["token"], entry["bytes"] = alts[0].get("token"), alts[0].get("bytes")
    return body


def raw_bpe_alternatives(path: str, request: dict[str, Any], body: Any) -> Any:
    """Alternatives spelled as raw byte-level BPE pieces (' the' as 'Ġthe', a newline as
    'Ċ') while the chosen tokens stay decoded."""
    for _, lp in _each_completion_logprobs(body):
        lp["top_logprobs"] = [{as_byte_level_piece(k): v for k, v in top.items()}
                              if isinstance(top, dict) else top
                              for top in lp.get("top_logprobs") or []]
    for choice in choices(body):
        for entry in _chat_content(choice):
            for alt in entry.get("top_logprobs") or []:
                if isinstance(alt, dict) and isinstance(alt.get("token"), str):
                    alt["token"] = as_byte_level_piece(alt["token"])
    return body


def _resize_chat_top(delta: int) -> JsonHook:
    def resize(path: str, request: dict[str, Any], body: Any) -> Any:
        if not _is_chat(path):
            return body
        for choice in choices(body):
            for entry in _chat_content(choice):
                alts = entry.get("top_logprobs")
                if not isinstance(alts, list) or not alts:
                    continue
                if delta < 0:
                    entry["top_logprobs"] = alts[:delta]
                else:
                    last = alts[-1]
                    extra = {"token": "\u2400tie", "logprob": last.get("logprob"), "bytes": None}
                    entry["top_logprobs"] = [*alts, extra]
        return body

    return resize


def chat_no_top_null(path: str, request: dict[str, Any], body: Any) -> Any:
    if _is_chat(path) and request.get("logprobs") is True and not request.get("top_logprobs"):
        for choice in choices(body):
            choice["logprobs"] = None
    return body


def chat_top_unasked(path: str, request: dict[str, Any], body: Any) -> Any:
    """logprobs: true without top_logprobs answered with the chosen token as an alternative."""
    if _is_chat(path) and request.get("logprobs") is True and not request.get("top_logprobs"):
        for choice in choices(body):
            for entry in _chat_content(choice):
                entry["top_logprobs"] = [{key: entry.get(key) for key in ("token", "logprob",
                                                                           "bytes")}]
    return body


# --- values ------------------------------------------------------------------------------

def _first_completion_value(body: Any) -> tuple[dict[str, Any], int] | None:
    for _, lp in _each_completion_logprobs(body):
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
        content = _chat_content(choice)
        if content:
            content[0]["logprob"] = value
            for alt in content[0].get("top_logprobs") or []:
                if alt.get("token") == content[0].get("token"):
                    alt["logprob"] = value
    return body


def positive_logprob(path: str, request: dict[str, Any], body: Any) -> Any:
    return _set_first_value(body, 0.5)


def nan_literal(path: str, request: dict[str, Any], body: Any) -> Any:
    return _set_first_value(body, math.nan)  # serialised as the bare NaN literal


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

    for _, lp in _each_completion_logprobs(body):
        for p, (token, top) in enumerate(zip(lp["tokens"], lp["top_logprobs"], strict=False)):
            if isinstance(top, dict) and top:
                new, _ = rescale(list(top.values()))
                lp["top_logprobs"][p] = dict(zip(top, new, strict=True))
                if token in top:
                    lp["token_logprobs"][p] = lp["top_logprobs"][p][token]
    for choice in choices(body):
        for entry in _chat_content(choice):
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


def _unit(*key: Any) -> float:
    """A deterministic number in [0, 1) from ``key``: faults repeat for a repeated request."""
    digest = hashlib.sha256(json.dumps(key, ensure_ascii=False, default=str).encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def _move_row(lp: dict[str, Any], p: int, change: Callable[[float], float]) -> None:
    """Apply ``change`` to row ``p``: its logprob and its alternatives together."""
    values, tops = lp["token_logprobs"], lp["top_logprobs"]
    if isinstance(values[p], int | float):
        values[p] = change(values[p])
    top = tops[p] if p < len(tops) else None
    if isinstance(top, dict):
        tops[p] = {k: change(v) if isinstance(v, int | float) else v for k, v in top.items()}


def _room_above(lp: dict[str, Any], p: int) -> float:
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


def _prompt_rows(request: dict[str, Any], lp: dict[str, Any]) -> range:
    """The echoed prompt rows of a choice (row 0 has nothing before it; generated rows last)."""
    max_tokens = request.get("max_tokens")
    generated = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else 0
    return range(1, len(lp["token_logprobs"]) - generated)


def gpu_numerics(path: str, request: dict[str, Any], body: Any) -> Any:
    """Echoed prompt rows drift the way a bf16 GPU prefill drifts from decode (ENVIRONMENT.md):
    on about a third of the rows, the row's logprob and its alternatives move together by 0.05
    to 0.2 nats, never above 0 nor past a probability mass of 1. Generated rows are left
    alone. The drift of a row is a function of the tokens up to it, as a deterministic
    kernel's is: prompts sharing a prefix drift alike there. A correct deployment looks like
    this: the suite must not fail it."""
    if not (_is_completions(path) and request.get("echo")):
        return body
    for _, lp in _each_completion_logprobs(body):
        tokens = lp.get("tokens") or []
        for p in _prompt_rows(request, lp):
            if _unit("row", tokens[:p + 1]) >= 1 / 3:
                continue
            # |drift| in [0.05, 0.2]: the drifting rows of the measurement were the large ones
            magnitude = GPU_DRIFT_MIN + _unit("drift", tokens[:p + 1]) * (GPU_DRIFT_MAX - GPU_DRIFT_MIN)
            shift = magnitude if _unit("sign", tokens[:p + 1]) < 0.5 else -magnitude
            if shift > _room_above(lp, p):
                shift = -shift  # a row near certainty can only drift down
            _move_row(lp, p, lambda v, d=shift: v + d)
    return body


def echo_offset(path: str, request: dict[str, Any], body: Any) -> Any:
    """Every echoed prompt row 0.05 nats lower than generation gives (a prefill path off by a
    constant, e.g. a wrong normaliser): inside any per-token bound, caught by the run's median."""
    if _is_completions(path) and request.get("echo"):
        for _, lp in _each_completion_logprobs(body):
            for p in _prompt_rows(request, lp):
                _move_row(lp, p, lambda v: v - 0.05)
    return body


def echo_rounded(path: str, request: dict[str, Any], body: Any) -> Any:
    """Echoed prompt logprobs rounded to one decimal (a float formatting shortcut)."""
    if _is_completions(path) and request.get("echo"):
        for _, lp in _each_completion_logprobs(body):
            for p in _prompt_rows(request, lp):
                _move_row(lp, p, lambda v: min(round(v, 1), 0.0))
    return body


def logprob_jitter(path: str, request: dict[str, Any], body: Any) -> Any:
    """Every completions row moves by its own offset in [-0.05, 0.05], independently in every
    request: echo and generation disagree by up to 0.1 nats everywhere."""
    if not _is_completions(path):
        return body
    for choice, lp in _each_completion_logprobs(body):
        for p in range(len(lp["token_logprobs"])):
            shift = min((_unit("jitter", request, choice.get("index"), p) * 2 - 1) * 0.05,
                        _room_above(lp, p))
            _move_row(lp, p, lambda v, d=shift: v + d)
    return body


# --- text and usage ----------------------------------------------------------------------

SCALE = 1 / 0.7


def softmax_scaled(path: str, request: dict[str, Any], body: Any) -> Any:
    """Every logprob times 1/0.7, everywhere alike: the log-softmax at temperature 0.7 (up to
    its normaliser), values still <= 0, sorted and mutually consistent."""
    def scale(value: Any) -> Any:
        return value * SCALE if isinstance(value, float | int) and not isinstance(value, bool) \
            else value

    for _, lp in _each_completion_logprobs(body):
        lp["token_logprobs"] = [scale(v) for v in lp["token_logprobs"]]
        lp["top_logprobs"] = [{k: scale(v) for k, v in top.items()} if isinstance(top, dict)
                              else top for top in lp.get("top_logprobs") or []]
    for choice in choices(body):
        for entry in _chat_content(choice):
            entry["logprob"] = scale(entry.get("logprob"))
            for alt in entry.get("top_logprobs") or []:
                if isinstance(alt, dict):
                    alt["logprob"] = scale(alt.get("logprob"))
    return body


def duplicate_alternative(path: str, request: dict[str, Any], body: Any) -> Any:
    """Chat top_logprobs with the second alternative a copy of the first."""
    for choice in choices(body):
        for entry in _chat_content(choice):
            alts = entry.get("top_logprobs")
            if isinstance(alts, list) and len(alts) >= 2 and isinstance(alts[0], dict):
                alts[1] = copy.deepcopy(alts[0])
    return body


def list_rows_swapped(path: str, request: dict[str, Any], body: Any) -> Any:
    """A list of prompts answered with the first two choices' logprobs exchanged (choices
    given the wrong index's values)."""
    found = choices(body)
    if _is_completions(path) and isinstance(request.get("prompt"), list) and len(found) >= 2 \
            and not isinstance(request["prompt"][0], int):
        found[0]["logprobs"], found[1]["logprobs"] = found[1].get("logprobs"), \
            found[0].get("logprobs")
    return body


def n_choices_logprobs_rotated(path: str, request: dict[str, Any], body: Any) -> Any:
    """Each choice of an n > 1 request given the next choice's token_logprobs and
    top_logprobs, its own tokens and text kept (logprobs gathered under another index)."""
    n = request.get("n")
    found = [lp for _, lp in _each_completion_logprobs(body)]
    if not (_is_completions(path) and isinstance(n, int) and n > 1 and len(found) > 1
            and not request.get("echo")):
        return body
    moved = [(lp["token_logprobs"], lp.get("top_logprobs")) for lp in found]
    for lp, (values, tops) in zip(found, moved[1:] + moved[:1], strict=True):
        lp["token_logprobs"], lp["top_logprobs"] = values, tops
    return body


def tokens_past_stop(path: str, request: dict[str, Any], body: Any) -> Any:
    """A choice ended by a stop string keeps two more tokens after it, with their logprobs
    (the last two entries again), as speculative decoding's accepted batch left them."""
    if not (_is_completions(path) and request.get("stop")):
        return body
    for choice, lp in _each_completion_logprobs(body):
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


_SIGHTINGS: dict[str, int] = {}


def stale_prefix_cache(path: str, request: dict[str, Any], body: Any) -> Any:
    """An echoed text prompt seen before comes back with its cached rows off: by 0.7 nats
    the second time, 1.4 the third (each reuse of a stale or uninitialised block reads other
    garbage); the first sighting is served correctly."""
    prompt = request.get("prompt")
    if not (_is_completions(path) and request.get("echo") and isinstance(prompt, str)):
        return body
    seen = _SIGHTINGS.get(prompt, 0)
    _SIGHTINGS[prompt] = seen + 1
    for _, lp in _each_completion_logprobs(body):
        values = lp["token_logprobs"]
        for p in range(1, max(1, len(values) - 1)):  # the prompt's rows, not the generated one
            if seen and isinstance(values[p], float | int):
                values[p] = min(0.0, values[p] - 0.7 * seen)
    return body


_ARRIVALS: list[int] = [0]  # requests the batch-noise fault has seen: each meets its own batch


def batch_noise(path: str, request: dict[str, Any], body: Any) -> Any:
    """Batch nondeterminism as a GPU without batch-invariant kernels shows it: on about one
    echoed prompt row in ten, the row and its alternatives move down together by 0.005 to
    0.15 nats, the rows chosen afresh for every request (each lands in another batch) and for
    each prompt of a list. Never above 0, never past a mass of 1. It must not fail the run."""
    if not (_is_completions(path) and request.get("echo")):
        return body
    _ARRIVALS[0] += 1
    for index, (_, lp) in enumerate(_each_completion_logprobs(body)):
        for p in _prompt_rows(request, lp):
            key = ("batch", _ARRIVALS[0], index, p)
            if _unit(*key, "row") < 0.1:
                shift = 0.005 + _unit(*key, "size") * 0.145
                _move_row(lp, p, lambda v, d=shift: v - d)
    return body


_SCORED: dict[str, int] = {}  # prompts repeat-shifted has answered, and how often


def repeat_shifted(path: str, request: dict[str, Any], body: Any) -> Any:
    """An echoed prompt seen before comes back with every prompt row 0.2 nats lower (a cache
    row reused with other numerics): each token stays under the per-token bound, the median
    does not."""
    prompt = request.get("prompt")
    one_prompt = isinstance(prompt, str) or (isinstance(prompt, list) and bool(prompt) and all(
        isinstance(i, int) for i in prompt))
    if not (_is_completions(path) and request.get("echo") and one_prompt):
        return body
    key = json.dumps(prompt)
    seen = _SCORED.get(key, 0)
    _SCORED[key] = seen + 1
    if seen:
        for _, lp in _each_completion_logprobs(body):
            for p in _prompt_rows(request, lp):
                _move_row(lp, p, lambda v: v - 0.2)
    return body


def list_shifted(path: str, request: dict[str, Any], body: Any) -> Any:
    """A list of prompts answered with every prompt row after the first prompt's 0.2 nats lower
    (batch-dependent numerics beyond noise)."""
    prompt = request.get("prompt")
    if not (_is_completions(path) and request.get("echo") and isinstance(prompt, list)
            and len(prompt) > 1 and isinstance(prompt[0], str | list)):
        return body
    for choice, lp in _each_completion_logprobs(body):
        if choice.get("index"):
            for p in _prompt_rows(request, lp):
                _move_row(lp, p, lambda v: v - 0.2)
    return body


def text_offset_drift(path: str, request: dict[str, Any], body: Any) -> Any:
    for _, lp in _each_completion_logprobs(body):
        if isinstance(lp.get("text_offset"), list):
            lp["text_offset"] = [o + p for p, o in enumerate(lp["text_offset"])]
    return body


def usage_mismatch(path: str, request: dict[str, Any], body: Any) -> Any:
    usage = body.get("usage") if isinstance(body, dict) else None
    if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
        usage["completion_tokens"] += 1
        if isinstance(usage.get("total_tokens"), int):
            usage["total_tokens"] += 1
    return body


# --- errors --------------------------------------------------------------------------------

def error_as_500(path: str, request: dict[str, Any], status: int, body: bytes) -> tuple[int, bytes]:
    return (500, body) if 400 <= status < 500 else (status, body)


def batch_500(path: str, request: dict[str, Any], status: int, body: bytes) -> tuple[int, bytes]:
    prompt = request.get("prompt")
    if _is_completions(path) and isinstance(prompt, list) and prompt \
            and isinstance(prompt[0], str | list):
        error = {"error": {"message": "", "type": "internal_server_error", "param": None,
                           "code": None}}
        return 500, json.dumps(error).encode()
    return status, body


def token_ids_500(path: str, request: dict[str, Any], status: int,
                  body: bytes) -> tuple[int, bytes]:
    """A token-id prompt answered with a 500, as llama-cpp-python's validation fails it."""
    prompt = request.get("prompt")
    if _is_completions(path) and isinstance(prompt, list) and prompt \
            and all(isinstance(i, int) for i in prompt):
        error = {"error": {"message": "1 validation error for CreateCompletionRequest",
                           "type": "internal_server_error", "param": None, "code": None}}
        return 500, json.dumps(error).encode()
    return status, body


def max_tokens_zero_flat_400(path: str, request: dict[str, Any], status: int,
                             body: bytes) -> tuple[int, bytes]:
    """``max_tokens: 0`` refused with a 400 whose body is flat, not an OpenAI error object,
    as LMDeploy 0.18.0 answers it (../shared/gpu-runs/lmdeploy-probe.txt)."""
    if _is_completions(path) and request.get("max_tokens") == 0:
        flat = {"message": "max_new_tokens must be at least 1, got 0.",
                "type": "invalid_request_error", "code": 400, "param": None, "object": "error"}
        return 400, json.dumps(flat).encode()
    return status, body


def max_tokens_zero_refused(path: str, request: dict[str, Any], status: int,
                            body: bytes) -> tuple[int, bytes]:
    """The same refusal with an OpenAI error object: a limitation ECHO-003 allows."""
    if _is_completions(path) and request.get("max_tokens") == 0:
        error = {"error": {"message": "max_new_tokens must be at least 1, got 0.",
                           "type": "invalid_request_error", "param": "max_tokens", "code": None}}
        return 400, json.dumps(error).encode()
    return status, body


CAPPED_LOGPROBS = 5


def logprobs_cap(path: str, request: dict[str, Any], status: int, body: bytes) -> tuple[int, bytes]:
    """Refuse more than 5 logprobs (or chat top_logprobs) with vLLM's own words, as a vLLM
    started with --max-logprobs 5 does: a legal limitation the suite must learn and respect."""
    asked = request.get("top_logprobs") if _is_chat(path) else request.get("logprobs")
    if isinstance(asked, int) and not isinstance(asked, bool) and asked > CAPPED_LOGPROBS:
        message = (f"Requested sample logprobs of {asked}, which is greater than max allowed: "
                   f"{CAPPED_LOGPROBS} (parameter=logprobs, value={asked})")
        error = {"error": {"message": message, "type": "BadRequestError", "param": "logprobs",
                           "code": 400}}
        return 400, json.dumps(error).encode()
    return status, body


def accept_invalid(path: str, request: dict[str, Any]) -> dict[str, Any]:
    """Repair invalid logprobs parameters before forwarding, so the server answers 200."""
    request = copy.deepcopy(request)
    if _is_chat(path):
        top = request.get("top_logprobs")
        if top is not None:
            if not isinstance(top, int) or isinstance(top, bool) or not 0 <= top <= 20:
                request["top_logprobs"] = 20 if isinstance(top, int | float) and top > 20 else 1
            request["logprobs"] = True
    elif _is_completions(path):
        k = request.get("logprobs")
        if isinstance(k, int) and not isinstance(k, bool) and not 0 <= k <= 5:
            request["logprobs"] = 5 if k > 5 else 0
    return request


# --- streams -------------------------------------------------------------------------------

def stream_without_logprobs(path: str, request: dict[str, Any], event: Any) -> Any:
    for choice in choices(event):
        if "logprobs" in choice:
            choice["logprobs"] = None
    return event


def stream_logprobs_differ(path: str, request: dict[str, Any], event: Any) -> Any:
    for choice in choices(event):
        lp = completion_logprobs(choice)
        if lp is not None:
            lp["token_logprobs"] = [v - 0.5 if isinstance(v, float | int) else v
                                    for v in lp["token_logprobs"]]
        for entry in _chat_content(choice):
            if isinstance(entry.get("logprob"), float | int):
                entry["logprob"] -= 0.5
    return event


FLOAT32_LOWEST = -3.4028234663852886e38


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
        for entry in _chat_content(choice):
            entry["logprob"] = placeholder(entry.get("logprob"))
    return event


def _logprob_chunk(event: Any) -> dict[str, Any] | None:
    """The one choice of a chunk that carries logprob entries, or None."""
    found = choices(event)
    if len(found) != 1:
        return None
    lp = completion_logprobs(found[0])
    if (lp is not None and lp["token_logprobs"]) or _chat_content(found[0]):
        return found[0]
    return None


def _merge_into(first: dict[str, Any], second: dict[str, Any]) -> None:
    """``second``'s tokens appended to ``first``, each given first's leading alternatives."""
    if isinstance(first.get("delta"), dict):
        first["delta"]["content"] = (first["delta"].get("content") or "") + (
            (second.get("delta") or {}).get("content") or "")
        entries = _chat_content(first)
        top = entries[0].get("top_logprobs")
        for entry in _chat_content(second):
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


# --- prompt_logprobs (vLLM's extension) ----------------------------------------------------

def _each_prompt_logprobs(path: str, request: dict[str, Any], body: Any) -> Iterator[
        dict[str, Any]]:
    """Every choice whose prompt_logprobs came back as a list, on a request that asked."""
    if _is_completions(path) and request.get("prompt_logprobs") is not None:
        for choice in choices(body):
            if isinstance(choice.get("prompt_logprobs"), list):
                yield choice


def prompt_rows_shifted(path: str, request: dict[str, Any], body: Any) -> Any:
    """Each prompt token given the next position's entry (the last keeps its own): the
    off-by-one that ECHO-001 and LMEVAL-002 catch in echo, here in prompt_logprobs."""
    for choice in _each_prompt_logprobs(path, request, body):
        rows = choice["prompt_logprobs"]
        choice["prompt_logprobs"] = [rows[0], *rows[2:], rows[-1]] if len(rows) > 2 else rows
    return body


_PROMPTS_SCORED: list[Any] = []  # prompts the prompt-prefix-shifted fault has seen


def _shares_a_prefix(a: Any, b: Any) -> bool:
    """Two prompts (texts or token ids) whose first 40 characters or 10 ids agree."""
    n = 40 if isinstance(a, str) else 10
    return type(a) is type(b) and len(a) >= n and len(b) >= n and a[:n] == b[:n]


def prompt_prefix_shifted(path: str, request: dict[str, Any], body: Any) -> Any:
    """prompt_logprobs of a prompt that shares its start with ones scored before come back
    0.1 nats lower on every row per earlier sighting (a reused cache block read with other
    numerics each time): tokens moved together, two sightings apart by 0.1 per token."""
    prompt = request.get("prompt")
    if not isinstance(prompt, str | list):
        return body
    seen = sum(_shares_a_prefix(prompt, p) for p in _PROMPTS_SCORED)
    for choice in _each_prompt_logprobs(path, request, body):
        _PROMPTS_SCORED.append(prompt)
        for row in choice["prompt_logprobs"][1:] if seen else []:
            for value in row.values() if isinstance(row, dict) else []:
                if isinstance(value, dict) and isinstance(value.get("logprob"), float):
                    value["logprob"] -= 0.1 * seen
    return body


def prompt_logprobs_null(path: str, request: dict[str, Any], body: Any) -> Any:
    """prompt_logprobs of [null] whatever the prompt's length."""
    for choice in _each_prompt_logprobs(path, request, body):
        choice["prompt_logprobs"] = [None]
    return body


def logprobs_after_bias(path: str, request: dict[str, Any], body: Any) -> Any:
    """With a forcing logit_bias, each generated position reported after the bias, as
    processed logprobs report it: the forced token at about 0 (the bias dominates the
    softmax), every other alternative 100 nats lower than it was."""
    bias = request.get("logit_bias")
    if not (_is_completions(path) and isinstance(bias, dict) and any(
            isinstance(v, int | float) and v >= 50 for v in bias.values())):
        return body
    for _choice, lp in _each_completion_logprobs(body):
        values, tokens = lp.get("token_logprobs") or [], lp.get("tokens") or []
        start = len(values) - (len(tokens) if not request.get("echo") else 0)
        for i in range(max(start, 0), len(values)):
            values[i] = -1e-4
            tops = lp.get("top_logprobs") or []
            if i < len(tops) and isinstance(tops[i], dict) and i < len(tokens):
                tops[i] = {t: -1e-4 if t == tokens[i] else v - 100.0
                           for t, v in tops[i].items()}
    return body


# --- the Responses API ---------------------------------------------------------------------

def _responses_parts(path: str, body: Any) -> Iterator[dict[str, Any]]:
    if path.rstrip("/").endswith("/responses") and isinstance(body, dict):
        for item in body.get("output") or []:
            for part in (item.get("content") or []) if isinstance(item, dict) else []:
                if isinstance(part, dict) and isinstance(part.get("logprobs"), list):
                    yield part


def responses_chat_shape(path: str, request: dict[str, Any], body: Any) -> Any:
    """A Responses part's logprobs in chat's shape, {content: [...]}, not a flat list."""
    for part in _responses_parts(path, body):
        part["logprobs"] = {"content": part["logprobs"]}
    return body


def responses_stream_empty(path: str, request: dict[str, Any], event: Any) -> Any:
    """Every streamed output_text.delta event with logprobs: [] (vLLM's streaming harmony
    path)."""
    if path.rstrip("/").endswith("/responses") and isinstance(event, dict) \
            and event.get("type") == "response.output_text.delta":
        event["logprobs"] = []
    return event


INT64 = range(-(2**63), 2**63)


def seed_beyond_int64(path: str, request: dict[str, Any]) -> bool:
    """A seed no C long holds: vLLM 0.26.0's GPU model runner raised OverflowError on 2**63
    and its engine died (../shared/gpu-runs/vllm-0.26-seed-overflow.txt)."""
    seed = request.get("seed")
    return isinstance(seed, int) and not isinstance(seed, bool) and seed not in INT64


FAULTS: dict[str, Fault] = {f.name: f for f in [
    Fault("null-logprobs", "completions logprobs: null whatever was asked",
          "LMDeploy >= 0.13 (lm-eval: TypeError: 'NoneType' object is not subscriptable)",
          ("SHAPE-002", "LMEVAL-001"), json=null_logprobs,
          looks=(("SHAPE-002", "logprobs: null"),)),
    Fault("missing-logprobs", "the completions logprobs key left out",
          "TGI, transformers serve", ("SHAPE-002", "LMEVAL-001"), json=missing_logprobs,
          looks=(("SHAPE-002", "no logprobs key"),)),
    Fault("chat-shape-on-completions", "completions logprobs in the chat shape {content: [...]}",
          "llama.cpp server (EleutherAI/lm-evaluation-harness#4158)",
          ("SHAPE-002", "LMEVAL-001"), json=chat_shape_on_completions,
          looks=(("SHAPE-002", "the chat logprobs shape"),
                 ("SHAPE-002", "'tokens' is a required property"),
                 ("STR-002", "'tokens' is a required property"),
                 ("SHAPE-005", "'tokens' is a required property"),
                 ("LMEVAL-001", "KeyError: 'token_logprobs'"))),
    Fault("echo-ignored", "echo ignored: only the generated token's logprobs come back",
          "ggml-org/llama.cpp#27174 (lm-eval scores at chance, silently)",
          ("ECHO-001", "LMEVAL-001", "LMEVAL-002"), json=echo_ignored,
          looks=(("ECHO-001", "does not start with the prompt"),
                 ("ECHO-001", "cannot cover"))),
    Fault("echo-shifted", "echo prompt logprobs shifted by one position",
          "llama-cpp-python 0.3.36", ("LMEVAL-002",), json=echo_shifted, properties=False),
    Fault("unsorted-chat-top", "chat top_logprobs in ascending order", "(synthetic)",
          ("VAL-005",), json=unsorted_chat_top),
    Fault("positive-logprob", "a logprob of +0.5", "(synthetic)", ("VAL-001",),
          json=positive_logprob),
    Fault("nan-literal", "a NaN literal where a logprob should be", "fp16 overflow in servers",
          ("VAL-001",), json=nan_literal),
    Fault("sampled-dropped", "the sampled token left out of completions top_logprobs",
          "(synthetic; lm-eval's greedy test then raises ValueError on an empty alternatives "
          "object)", ("CNT-001", "LMEVAL-001"),
          json=sampled_dropped),
    Fault("tokens-show-top-1", "tokens name the most likely alternative, not the sampled "
          "token (its logprob and the text kept)", "theroyallab/tabbyAPI#141",
          ("VAL-003", "TXT-001"), json=tokens_show_top_1),
    Fault("raw-bpe-alternatives", "alternatives spelled as raw BPE pieces ('Ġthe'), the chosen "
          "tokens decoded", "InternLM/lmdeploy#2802", ("TXT-006",), json=raw_bpe_alternatives),
    Fault("chat-top-k-minus-1", "chat top_logprobs with k-1 entries",
          "InternLM/lmdeploy#1548", ("CNT-002",), json=_resize_chat_top(-1)),
    Fault("chat-top-k-plus-1", "chat top_logprobs with k+1 entries", "TGI on ties",
          ("CNT-002",), json=_resize_chat_top(+1)),
    Fault("chat-no-top-null", "chat logprobs: true without top_logprobs answered with null",
          "llama-cpp-python 0.3.36", ("CNT-003",), json=chat_no_top_null,
          looks=(("CNT-003", "answered without logprobs"),)),
    Fault("chat-top-unasked", "chat logprobs: true without top_logprobs answered with "
          "alternatives", "llama.cpp's llama-server (docs/baselines/llama-server.json)",
          ("CNT-003",), json=chat_top_unasked,
          looks=(("CNT-003", "must be [] when not asked for"),)),
    Fault("text-offset-drift", "text_offset drifts from the token lengths", "(synthetic)",
          ("TXT-003",), json=text_offset_drift),
    Fault("usage-mismatch", "usage.completion_tokens one more than the logprob entries",
          "(synthetic)", ("CNT-004",), json=usage_mismatch),
    Fault("error-as-500", "a 4xx for invalid parameters turned into a 500", "(synthetic)",
          ("ERR-001", "ERR-002", "ERR-003"), raw=error_as_500),
    Fault("accept-invalid", "invalid logprobs parameters accepted with a 200",
          "llama-cpp-python 0.3.36 (top_logprobs: 25), transformers serve",
          ("ERR-001", "ERR-002", "ERR-003"), request=accept_invalid,
          looks=(("ERR-001", "accepted with a 200"), ("ERR-002", "accepted with a 200"),
                 ("ERR-003", "accepted with a 200"))),
    Fault("stream-no-logprobs", "stream chunks without logprobs", "(synthetic)",
          ("STR-001",), chunk=stream_without_logprobs, properties=False),
    Fault("stream-logprobs-differ", "streamed logprobs 0.5 lower than non-streamed", "(synthetic)",
          ("STR-001", "STR-003"), chunk=stream_logprobs_differ),
    Fault("stream-placeholder-logprobs", "chosen tokens' logprobs in stream chunks sent as "
          "0.0 or float32's lowest value, their alternatives left true",
          "sgl-project/sglang#5761; NVIDIA/TensorRT-LLM#2406 (logprobs always 0.000, streaming "
          "too)", ("STR-001", "STR-003"), chunk=stream_placeholder_logprobs),
    Fault("stream-chunks-merged", "two tokens per stream chunk, the second given the first's "
          "alternatives", "sgl-project/sglang#39260 (multi-token chunks: speculative decoding, "
          "stream_interval > 1)", ("STR-001", "STR-003"), stream=stream_chunks_merged),
    Fault("logprobs-after-temperature", "logprobs computed after temperature scaling",
          "SGLang, TGI (a legal mode: reported as INFO, never a failure)", ("SMP-003",),
          fatal=False, shows=("SMP-003", "processed"), json=logprobs_after_temperature,
          properties=False),
    Fault("echo-offset", "echoed prompt logprobs 0.05 nats below generation's",
          "(synthetic: a prefill normaliser off by a constant)", ("NUM-001",), json=echo_offset,
          properties=False),
    Fault("echo-rounded", "echoed prompt logprobs rounded to one decimal", "(synthetic)",
          ("NUM-001",), json=echo_rounded, properties=False),
    Fault("logprob-jitter", "every completions logprob moved by up to 0.05 nats, independently "
          "in each request", "(synthetic)", ("NUM-001",), json=logprob_jitter,
          properties=False),
    Fault("gpu-numerics", "echoed prompt rows drift by up to 0.2 nats on a third of the rows, "
          "as bf16 prefill drifts from decode on a GPU", "every correct bf16/fp16 GPU "
          "deployment (measured on an H200: ENVIRONMENT.md); must NOT fail the run",
          ("NUM-002",), fatal=False, shows=("NUM-002", "drift over"), json=gpu_numerics,
          properties=False),
    Fault("logprobs-cap-5", "more than 5 logprobs refused with a clean 400, as vLLM "
          "--max-logprobs 5 does", "deployments that lower vLLM's --max-logprobs (a legal "
          "limit: must NOT fail the run)", ("ERR-007",), fatal=False, shows=("ERR-007", "5"),
          raw=logprobs_cap, properties=False),
    Fault("softmax-scaled", "every logprob multiplied by 1/0.7, consistently everywhere (a "
          "softmax taken at temperature 0.7 where raw logprobs are claimed)", "(synthetic: "
          "what only a reference model sees; no self-consistency check can)", ("ORACLE-001",),
          json=softmax_scaled, chunk=softmax_scaled, properties=False),
    Fault("duplicate-alternative", "chat top_logprobs with the second alternative a copy of "
          "the first", "huggingface/text-generation-inference#1852, sgl-project/sglang#2088",
          ("VAL-007",), json=duplicate_alternative),
    Fault("list-rows-swapped", "a list of prompts answered with two choices' logprobs "
          "exchanged", "sgl-project/sglang#1176 (choices' indices misassigned)",
          ("CONS-001",), json=list_rows_swapped, properties=False),
    Fault("n-choices-logprobs-rotated", "each choice of n > 1 given the next choice's "
          "logprobs, its tokens and text kept", "sgl-project/sglang#1176 (choices' indices "
          "misassigned)", ("CONS-003",), json=n_choices_logprobs_rotated),
    Fault("tokens-past-stop", "a choice ended by a stop string keeps two more tokens after it, "
          "with their logprobs", "vllm-project/vllm#47616 (speculative decoding), "
          "NVIDIA/TensorRT-LLM#18190", ("TXT-007",), json=tokens_past_stop),
    Fault("stale-prefix-cache", "an echoed prompt seen before comes back with its rows "
          "0.7 nats off per earlier sighting",
          "vllm-project/vllm#3251, #8268 (stale prefix-cache rows)", ("CONS-001",),
          json=stale_prefix_cache),
    Fault("batch-noise", "on one echoed prompt row in ten, chosen afresh per request and per "
          "prompt of a list, the row moves down by up to 0.15 nats", "every GPU deployment "
          "without batch-invariant kernels (vLLM docs/features/batch_invariance.md); must NOT "
          "fail the run", ("CONS-005",), fatal=False, shows=("CONS-005", "consistency drift"),
          json=batch_noise, properties=False),
    Fault("repeat-shifted", "an echoed prompt seen before comes back with every prompt row 0.2 "
          "nats lower", "vllm-project/vllm#42019 (stale prefix-cache rows)", ("CONS-004",),
          json=repeat_shifted, properties=False),
    Fault("list-shifted", "in a list of prompts, every prompt row of the second and later "
          "prompts 0.2 nats lower", "vllm-project/vllm#11778 (batch-dependent numerics)",
          ("CONS-004",), json=list_shifted, properties=False),
    Fault("token-ids-500", "a token-id prompt answered with a 500", "llama-cpp-python 0.3.36",
          ("ERR-004",), raw=token_ids_500),
    Fault("max-tokens-zero-flat-400", "max_tokens 0 refused with a 400 whose body is a flat "
          "{message, type, code}, not an OpenAI error object", "LMDeploy 0.18.0", ("ERR-004",),
          raw=max_tokens_zero_flat_400),
    Fault("max-tokens-zero-refused", "max_tokens 0 refused with a clean 400 (an OpenAI error "
          "object): a limitation, reported", "LMDeploy 0.18.0 (with a flat body there)",
          ("ERR-007",), fatal=False, shows=("ERR-007", "max_new_tokens must be at least 1"),
          properties=False,
          raw=max_tokens_zero_refused),
    Fault("batch-500", "a list of prompts answered with a 500", "llama-cpp-python 0.3.36",
          ("ERR-004",), raw=batch_500, properties=False),
    Fault("prompt-rows-shifted", "prompt_logprobs: each prompt token given the next "
          "position's entry", "the echo offset (llama-cpp-python 0.3.36, ggml-org/llama.cpp"
          "#27174) in prompt_logprobs; vllm-project/vllm#42019 (stale prefix-cache rows)",
          ("PROMPT-002",), json=prompt_rows_shifted, properties=False),
    Fault("prompt-prefix-shifted", "prompt_logprobs of a prompt sharing its start with ones "
          "scored before, every row 0.1 nats lower per earlier sighting", "vllm-project/vllm#42019 (stale "
          "prefix-cache rows)", ("CONS-004",), json=prompt_prefix_shifted, properties=False),
    Fault("prompt-logprobs-null", "prompt_logprobs of [null] whatever the prompt's length",
          "vllm-project/vllm-metal#680", ("PROMPT-001",), json=prompt_logprobs_null),
    Fault("responses-chat-shape", "Responses logprobs in the chat shape {content: [...]}, "
          "not a flat list", "llama.cpp's server and SGLang answer the Responses request in "
          "other shapes (a 400, then logprobs: [])", ("RESP-001",), json=responses_chat_shape),
    Fault("responses-stream-empty", "a Responses stream's output_text.delta events with "
          "logprobs: []", "vLLM's streaming harmony path (gpt-oss)", ("RESP-006",),
          chunk=responses_stream_empty, properties=False),
    Fault("logprobs-after-bias", "a token forced with logit_bias reported at its post-bias "
          "logprob (about 0), in a server whose other logprobs are raw",
          "lm-eval PR #4012's concern: a server reporting processed values scores every "
          "forced token alike", ("SMP-005",), json=logprobs_after_bias, properties=False),
    # Not judged by a test's own invariants (the death is a run-level finding, SRV-001),
    # so outside the property space as the kill matrix reads it, though the property
    # suite's pinned shape is what sends the request.
    Fault("dies-on-seed-beyond-int64", "a request with a seed outside int64 answered with a "
          "500, then the server exits: every later connection refused",
          "vLLM 0.26.0 on an H200 (OverflowError in the GPU model runner, the engine dead; "
          "../shared/gpu-runs/vllm-0.26-seed-overflow.txt)", ("SRV-001",),
          properties=False, dies=seed_beyond_int64),
]}


def resolve(names: str | list[str] | None) -> list[Fault]:
    """Faults by name (comma-separated or a list); a clear error for an unknown one."""
    if not names:
        return []
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = [n for n in names if n != "none"]  # "none": the proxy, transparent
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        raise ValueError(f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(FAULTS)}")
    return [FAULTS[n] for n in names]


def apply_json(faults: list[Fault], path: str, request: dict[str, Any], body: Any) -> Any:
    for fault in faults:
        if fault.json is not None:
            body = fault.json(path, request, body)
    return body


def dumps(body: Any) -> bytes:
    """Serialise like a server would, NaN included (the nan-literal fault relies on it)."""
    return json.dumps(body, allow_nan=True, ensure_ascii=False).encode()


def markdown_table() -> str:
    """The README's table of faults, generated from FAULTS (never copied by hand)."""
    lines = ["| fault | what it does | seen in | caught by |", "| --- | --- | --- | --- |"]
    for fault in FAULTS.values():
        caught = ", ".join(fault.trips)
        if not fault.fatal:
            caught += " (must **not** fail the run)"
        lines.append(f"| `{fault.name}` | {fault.description} | {fault.seen_in} | {caught} |")
    return "\n".join(lines)
