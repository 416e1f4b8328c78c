"""Alternatives (top_logprobs) wrong: unsorted, too few or too many, unasked, duplicated,
spelled as raw BPE pieces, or the sampled token left out."""

from __future__ import annotations

import copy
import math
from typing import Any

from logprobe.faults.body import chat, chat_entries, completions, each_completion_logprobs, is_chat
from logprobe.faults.registry import Fault, JsonHook, fault, register
from logprobe.invariants.readers import choices


@fault("unsorted-chat-top",
       "chat top_logprobs in ascending order",
       "(synthetic)",
       ("VAL-005",),
       when=chat)
def unsorted_chat_top(path: str, request: dict[str, Any], body: Any) -> Any:
    for choice in choices(body):
        for entry in chat_entries(choice):
            alts = entry.get("top_logprobs")
            if isinstance(alts, list) and len(alts) >= 3:
                entry["top_logprobs"] = list(reversed(alts))
    return body


@fault("sampled-dropped",
       "the sampled token left out of completions top_logprobs",
       "(synthetic; lm-eval's greedy test then raises ValueError on an empty alternatives "
       "object)",
       ("CNT-001", "LMEVAL-001"),
       when=completions)
def sampled_dropped(path: str, request: dict[str, Any], body: Any) -> Any:
    """Completions top_logprobs without the sampled token (only the other alternatives)."""
    for _, lp in each_completion_logprobs(body):
        for p, (token, top) in enumerate(zip(lp["tokens"], lp["top_logprobs"], strict=False)):
            if isinstance(top, dict) and token in top:
                lp["top_logprobs"][p] = {k: v for k, v in top.items() if k != token}
    return body


@fault("tokens-show-top-1",
       "tokens name the most likely alternative, not the sampled "
       "token (its logprob and the text kept)",
       "theroyallab/tabbyAPI#141",
       ("VAL-003", "TXT-001"))
def tokens_show_top_1(path: str, request: dict[str, Any], body: Any) -> Any:
    """Each position names its most likely alternative where another token was sampled,
    the sampled token's logprob and the text kept."""
    for _, lp in each_completion_logprobs(body):
        tokens = lp.get("tokens") or []
        for p, top in enumerate(lp.get("top_logprobs") or []):
            if isinstance(top, dict) and top and p < len(tokens):
                tokens[p] = max(top, key=lambda k: top[k] if isinstance(top[k], float | int)
                                else -math.inf)
    for choice in choices(body):
        for entry in chat_entries(choice):
            alts = [a for a in entry.get("top_logprobs") or [] if isinstance(a, dict)]
            if alts:
                entry["token"], entry["bytes"] = alts[0].get("token"), alts[0].get("bytes")
    return body


def _gpt2_byte_encoder() -> dict[int, str]:
    """GPT-2's byte -> character table as openai/gpt-2 publishes it (src/encoder.py,
    ``bytes_to_unicode``), written here from that reference and not taken from the TXT-006
    check, so that a bug in the check's own alphabet would not be made and missed alike."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("\xa1"), ord("\xac") + 1),
            *range(ord("\xae"), ord("\xff") + 1)]
    chars = list(kept)
    extra = 0
    for byte in range(256):
        if byte not in kept:
            kept.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {byte: chr(char) for byte, char in zip(kept, chars, strict=True)}


_GPT2_BYTES = _gpt2_byte_encoder()


def gpt2_piece(text: str) -> str:
    """``text`` as a raw byte-level BPE piece: ' the' as 'Ġthe', a newline as 'Ċ'."""
    return "".join(_GPT2_BYTES[byte] for byte in text.encode("utf-8"))


@fault("raw-bpe-alternatives",
       "alternatives spelled as raw BPE pieces ('Ġthe'), the chosen "
       "tokens decoded",
       "InternLM/lmdeploy#2802",
       ("TXT-006",))
def raw_bpe_alternatives(path: str, request: dict[str, Any], body: Any) -> Any:
    """Alternatives spelled as raw byte-level BPE pieces (' the' as 'Ġthe', a newline as
    'Ċ') while the chosen tokens stay decoded."""
    for _, lp in each_completion_logprobs(body):
        lp["top_logprobs"] = [{gpt2_piece(k): v for k, v in top.items()}
                              if isinstance(top, dict) else top
                              for top in lp.get("top_logprobs") or []]
    for choice in choices(body):
        for entry in chat_entries(choice):
            for alt in entry.get("top_logprobs") or []:
                if isinstance(alt, dict) and isinstance(alt.get("token"), str):
                    alt["token"] = gpt2_piece(alt["token"])
    return body


def _resize_chat_top(delta: int) -> JsonHook:
    def resize(path: str, request: dict[str, Any], body: Any) -> Any:
        if not is_chat(path):
            return body
        for choice in choices(body):
            for entry in chat_entries(choice):
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


register(Fault("chat-top-k-minus-1", "chat top_logprobs with k-1 entries",
               "InternLM/lmdeploy#1548", ("CNT-002",), json=_resize_chat_top(-1)))


register(Fault("chat-top-k-plus-1", "chat top_logprobs with k+1 entries", "TGI on ties",
               ("CNT-002",), json=_resize_chat_top(+1)))


@fault("chat-no-top-null",
       "chat logprobs: true without top_logprobs answered with null",
       "llama-cpp-python 0.3.36",
       ("CNT-003",),
       looks=(("CNT-003", "answered without logprobs"),))
def chat_no_top_null(path: str, request: dict[str, Any], body: Any) -> Any:
    if is_chat(path) and request.get("logprobs") is True and not request.get("top_logprobs"):
        for choice in choices(body):
            choice["logprobs"] = None
    return body


@fault("chat-top-unasked",
       "chat logprobs: true without top_logprobs answered with "
       "alternatives",
       "llama.cpp's llama-server (docs/baselines/llama-server.json)",
       ("CNT-003",),
       looks=(("CNT-003", "must be [] when not asked for"),))
def chat_top_unasked(path: str, request: dict[str, Any], body: Any) -> Any:
    """logprobs: true without top_logprobs answered with the chosen token as an alternative."""
    if is_chat(path) and request.get("logprobs") is True and not request.get("top_logprobs"):
        for choice in choices(body):
            for entry in chat_entries(choice):
                entry["top_logprobs"] = [{key: entry.get(key) for key in ("token", "logprob",
                                                                           "bytes")}]
    return body


@fault("duplicate-alternative",
       "chat top_logprobs with the second alternative a copy of "
       "the first",
       "huggingface/text-generation-inference#1852, sgl-project/sglang#2088",
       ("VAL-007",))
def duplicate_alternative(path: str, request: dict[str, Any], body: Any) -> Any:
    """Chat top_logprobs with the second alternative a copy of the first."""
    for choice in choices(body):
        for entry in chat_entries(choice):
            alts = entry.get("top_logprobs")
            if isinstance(alts, list) and len(alts) >= 2 and isinstance(alts[0], dict):
                alts[1] = copy.deepcopy(alts[0])
    return body
