"""Which checks judge an arbitrary exchange: the registry's exchange checks, loaded.

The property-based suite sends requests nobody wrote by hand; this is where
it learns which invariants apply to each, so nothing is re-implemented for
properties: the same check functions judge both. Importing this module
imports every check module of the package, so the registry is complete.
"""

from __future__ import annotations

from typing import Any

from logprobe.invariants import (  # noqa: F401  (imported to register their checks)
    counts,
    echo,
    errors,
    lmeval,
    numerics,
    sampling,
    shape,
    streaming,
    text,
    values,
)
from logprobe.invariants.core import ExchangeCheck, exchange_checks


def checks_for(path: str, request: dict[str, Any]) -> list[ExchangeCheck]:
    """The exchange checks that judge a response to ``request`` sent to ``path``."""
    return exchange_checks(path, request)
