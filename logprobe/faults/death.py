"""A request the server dies of."""

from __future__ import annotations

from typing import Any

from logprobe.faults.registry import fault

INT64 = range(-(2**63), 2**63)


# Not judged by a test's own invariants (the death is a run-level finding, SRV-001), so
# outside the property space as the kill matrix reads it, though the property suite's
# pinned shape is what sends the request.
@fault("dies-on-seed-beyond-int64",
       "a request with a seed outside int64 answered with a "
       "500, then the server exits: every later connection refused",
       "vLLM 0.26.0 on an H200 (OverflowError in the GPU model runner, the engine dead; "
       "../shared/gpu-runs/vllm-0.26-seed-overflow.txt)",
       ("SRV-001",),
       properties=False,
       on="dies")
def seed_beyond_int64(path: str, request: dict[str, Any]) -> bool:
    """A seed no C long holds: vLLM 0.26.0's GPU model runner raised OverflowError on 2**63
    and its engine died (../shared/gpu-runs/vllm-0.26-seed-overflow.txt)."""
    seed = request.get("seed")
    return isinstance(seed, int) and not isinstance(seed, bool) and seed not in INT64
