"""Which checks judge an arbitrary exchange, from what its request asked for.

The property-based suite sends requests nobody wrote by hand; this is where
it learns which invariants apply to each, so nothing is re-implemented for
properties: the same check functions judge both.
"""

from __future__ import annotations

from typing import Any

from logprobe.invariants import counts, echo, sampling, shape, text, values
from logprobe.invariants.core import Check


def checks_for(path: str, request: dict[str, Any]) -> list[Check | tuple[Any, ...]]:
    """Check functions (or ``(check, *extra_args)``) that judge a response to ``request``."""
    if path.endswith("/chat/completions"):
        found: list[Check | tuple[Any, ...]] = [shape.check_chat_shape]
        if request.get("logprobs") is True:
            found += [values.check_logprob_values, values.check_alternatives,
                      counts.check_chat_counts, counts.check_entries_match_usage,
                      sampling.check_greedy_argmax]
        else:
            found.append(shape.check_no_logprobs_unasked)
        return found
    found = [shape.check_completions_shape]
    if request.get("logprobs") is None:
        return [*found, shape.check_no_logprobs_unasked]
    found += [values.check_logprob_values, values.check_alternatives,
              counts.check_completions_counts, counts.check_entries_match_usage,
              text.check_completions_text, sampling.check_greedy_argmax]
    if request.get("echo"):
        prompt = request.get("prompt")
        token_ids = isinstance(prompt, list) and prompt and isinstance(prompt[0], int)
        found.append((echo.check_echo, [len(prompt)]) if token_ids else echo.check_echo)
    if (request.get("n") or 1) > 1:
        found.append(sampling.check_choices_own_logprobs)
    return found
