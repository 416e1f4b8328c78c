"""docs/invariants.md: every invariant, from the catalogue and the check registry.

Written by ``logprobe invariants --markdown-into docs/invariants.md`` and tested equal to
what this module generates, so a new invariant reaches the docs with no hand edit.
"""

from __future__ import annotations

from logprobe.invariants.core import REGISTRY, Invariant
from logprobe.report.matrix import declared

FAMILIES = {
    "LMEVAL": "what lm-eval needs", "NUM": "numerics pooled over the run",
    "ORACLE": "against the served model's own values, computed locally",
    "SHAPE": "JSON shape", "VAL": "values", "CNT": "counts", "TXT": "text, tokens, offsets",
    "ECHO": "prompt logprobs (echo)", "SMP": "sampling", "STR": "streaming",
    "CONS": "the same prompt, sent other ways", "ERR": "errors and limits",
    "SRV": "the server survives every request",
    "PROMPT": "prompt_logprobs (vLLM's extension)",
    "RESP": "the Responses API (/v1/responses)",
    "DIFF": "against a reference endpoint (--reference-endpoint)",
}


def _judged_by(inv: Invariant) -> str:
    """Which registered checks judge it, and on what."""
    parts = []
    for entry in REGISTRY.values():
        if inv not in entry.invariants:
            continue
        name = f"`{entry.fn.__module__.rsplit('.', 1)[-1]}.{entry.fn.__name__}`"
        if entry.when is not None:
            what = (entry.when.__doc__ or entry.when.__name__).strip().rstrip(".")
            parts.append(f"{name} on {what[0].lower() + what[1:]}")
        else:
            parts.append(f"{name} (tests that build its exchanges)")
    return "; ".join(parts) or "the judge and the suites (no pure check)"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown() -> str:
    catalogue = declared()
    lines: list[str] = []
    for family, title in FAMILIES.items():
        members = sorted((i for i in catalogue.values() if i.id.split("-")[0] == family),
                         key=lambda i: i.id)
        if not members:
            continue
        lines += [f"### {family}: {title}", "", "| id | level | asserts | judged by | source |",
                  "| --- | --- | --- | --- | --- |"]
        lines += [f"| {i.id} | {i.level.value} | {_cell(i.statement)} | {_cell(_judged_by(i))} "
                  f"| {_cell(i.source)} |" for i in members]
        lines.append("")
    others = sorted(i for i in catalogue if i.split("-")[0] not in FAMILIES)
    if others:
        lines += ["### Other", "", ", ".join(others), ""]
    return "\n".join(lines).rstrip() + "\n"
