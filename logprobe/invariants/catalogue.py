"""Which checks judge an arbitrary exchange: the registry's exchange checks, loaded.

The property-based suite sends requests nobody wrote by hand; this is where
it learns which invariants apply to each, so nothing is re-implemented for
properties: the same check functions judge both. Importing this module
imports every module of ``logprobe/invariants/``, so the catalogue and the
registry are complete: a new module there needs no line anywhere else.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import logprobe.invariants as package
from logprobe.invariants.core import ExchangeCheck, exchange_checks

for _module in pkgutil.iter_modules(package.__path__):
    importlib.import_module(f"{package.__name__}.{_module.name}")


def checks_for(path: str, request: dict[str, Any]) -> list[ExchangeCheck]:
    """The exchange checks that judge a response to ``request`` sent to ``path``."""
    return exchange_checks(path, request)
