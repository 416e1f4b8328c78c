"""When two logprobs of the same token are the same number: tolerances from measured numerics.

A server scores a prompt token in a prefill (what ``echo`` returns) and a generated token
in a decode step; on a GPU in bf16 or fp16 the two computations round differently. Measured
on an NVIDIA H200 (ENVIRONMENT.md; shared/tools/gpu_numerics.py), |prefill - decode| over
115 tokens of SmolLM2-135M:

=========  =======  =======  ======  ===================
dtype      max      p99      median  tokens over 1e-2
=========  =======  =======  ======  ===================
float32    0.00004  0.00002  0       0 / 115
bfloat16   0.167    0.140    0       15 / 115
float16    0.043    0.026    0.002   17 / 115
=========  =======  =======  ======  ===================

That noise is *sparse*: most tokens agree exactly (or within 0.002), a few move by up to
0.17. The defects these comparisons exist for are *dense*: a one-position shift moves
nearly every token, typically by nats; rounding to one decimal moves every token by 0 to
0.05 (median 0.025); an offset of 0.05 moves every token by 0.05. Hence two bounds:

* ``per_token`` (0.5 nats): what one token may differ by. Three times the largest bf16
  drift measured, because larger models and other kernels drift more; still far below
  what a shift usually does.
* ``median`` (0.01 nats): what the median |difference| may reach over a comparison of at
  least ``min_tokens`` tokens, and over every echo-versus-generation token of a run
  (NUM-001). Sparse noise leaves the median at 0 (bf16) or 0.002 (fp16); rounding and
  offsets put it at 0.025 to 0.05. A comparison of fewer tokens is judged per token only:
  with three tokens, one noisy bf16 token in two (13% each) would make a false alarm in
  one comparison of fifty.

``--logprob-tolerance PER_TOKEN[:MEDIAN]`` overrides both, for people who know their
deployment's numerics better.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# A value compared with itself (a sampled token and its own alternative): only
# serialisation may separate them.
SAME_VALUE = 1e-6
# Alternatives' probabilities may sum a little above 1 after rounding.
MASS_SLACK = 1e-2
# Two alternatives closer than this are a tie for greedy decoding.
TIE = 1e-5


@dataclass(frozen=True)
class Tolerance:
    per_token: float = 0.5
    median: float = 0.01
    min_tokens: int = 4

    @classmethod
    def parse(cls, text: str) -> Tolerance:
        """``"0.5"`` or ``"0.5:0.01"`` (per token, then median), in nats."""
        parts = text.split(":")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"not a tolerance: {text!r} (expected PER_TOKEN[:MEDIAN])") from None
        if len(values) > 2 or any(not math.isfinite(v) or v < 0 for v in values):
            raise ValueError(f"not a tolerance: {text!r} (expected PER_TOKEN[:MEDIAN], >= 0)")
        return cls(values[0], values[1]) if len(values) == 2 else cls(values[0])

    def describe(self) -> str:
        return (f"{self.per_token:g} nats per token, median {self.median:g} over "
                f">= {self.min_tokens} tokens")


DEFAULT = Tolerance()


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class Drift:
    """|expected - actual| per compared position (positions where both are finite numbers)."""

    deltas: list[float] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)

    @classmethod
    def between(cls, expected: Sequence[Any], actual: Sequence[Any]) -> Drift:
        out = cls()
        for p, (a, b) in enumerate(zip(expected, actual, strict=False)):
            if _number(a) and _number(b):
                out.deltas.append(abs(a - b))
                out.positions.append(p)
        return out

    @classmethod
    def pooled(cls, drifts: Iterable[Drift]) -> Drift:
        out = cls()
        for d in drifts:
            out.deltas += d.deltas
            out.positions += d.positions
        return out

    @property
    def n(self) -> int:
        return len(self.deltas)

    def quantile(self, q: float) -> float:
        if not self.deltas:
            return 0.0
        ordered = sorted(self.deltas)
        return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]

    @property
    def max(self) -> float:
        return max(self.deltas, default=0.0)

    @property
    def median(self) -> float:
        if not self.deltas:
            return 0.0
        ordered = sorted(self.deltas)
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2

    def over(self, tolerance: Tolerance) -> list[tuple[int, float]]:
        """(position, |difference|) of each token beyond the per-token bound."""
        return [(p, d) for p, d in zip(self.positions, self.deltas, strict=True)
                if d > tolerance.per_token]

    def systematic(self, tolerance: Tolerance) -> bool:
        """A median beyond the bound, over enough tokens to tell it from sparse noise."""
        return self.n >= tolerance.min_tokens and self.median > tolerance.median

    def summary(self) -> str:
        return (f"{self.n} tokens: max {self.max:.3g}, p99 {self.quantile(0.99):.3g}, "
                f"median {self.median:.3g} nats")
