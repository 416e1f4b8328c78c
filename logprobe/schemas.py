"""Load the JSON Schemas in ``schemas/`` and validate documents against them.

The schema files live at the repository's top level (they are data about the
spec, readable without Python); a wheel carries them as package data. Cross-
file ``$ref``s resolve through a local registry: nothing is fetched.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource

from logprobe.data import require_data_dir

BASE_URI = "https://logprobe.dev/schemas/"


def schema_dir() -> Path:
    return require_data_dir("schemas")


@cache
def _registry() -> Registry:
    resources = []
    for path in sorted(schema_dir().glob("*.json")):
        contents = json.loads(path.read_text())
        resources.append((BASE_URI + path.name, Resource.from_contents(contents)))
    return Registry().with_resources(resources)


@cache
def load(name: str) -> dict[str, Any]:
    return json.loads((schema_dir() / f"{name}.json").read_text())


@cache
def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load(name), registry=_registry())


def errors(name: str, document: Any) -> list[str]:
    """Human-readable schema errors of ``document`` against schema ``name`` ([] if valid)."""
    found = []
    for error in sorted(validator(name).iter_errors(document), key=lambda e: list(e.path)):
        # anyOf/oneOf failures say only "x is not valid under any of the given schemas":
        # descend to the most relevant sub-error, which names the missing or wrong field.
        while error.context:
            error = max(error.context, key=_relevance)
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        found.append(f"{where}: {error.message[:200]}")
    return found


def _relevance(error: ValidationError) -> tuple[int, bool]:
    """Deeper errors first; "is not of type null" from an anyOf's null branch last."""
    return len(error.absolute_path), error.validator != "type"


def all_schema_names() -> list[str]:
    return sorted(p.stem for p in schema_dir().glob("*.json"))
