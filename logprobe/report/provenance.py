"""Where a run was made: the machine, the date, the server's flags, how it was judged.

A compatibility table that mixes a run made here on a CPU with one recorded on a GPU
somebody lent must say which is which, and a run judged with an expectation file must
not pass for a raw one. run.json knows part of that (the platform, the start, the
expectation file); the rest lives beside the runs, in ``provenance.yaml`` in the same
folder, keyed by file name, so that the recorded files stay exactly as they were made:

.. code-block:: yaml

    vllm-0.26-h200-bf16.json:
      name: vllm 0.26.0 (CUDA, H200, bf16)
      machine: NVIDIA H200, driver 580.159.04, CUDA 13.0, torch 2.11.0+cu130
      flags: vLLM defaults (bf16, FlashAttention 3, torch.compile, CUDA graphs, prefix caching)
      recorded: ../shared/gpu-runs/raw-bf16.json (cannot be re-made without a GPU)

Every field is optional; ``server_version`` fills in a version the server never reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

FILE_NAME = "provenance.yaml"


@dataclass(frozen=True)
class Provenance:
    name: str | None = None
    machine: str | None = None
    date: str | None = None
    flags: str | None = None
    judged: str | None = None
    recorded: str | None = None  # where the file came from, when it cannot be re-made here
    server_version: str | None = None
    note: str | None = None

    def short(self) -> str:
        """A table cell: the machine's first words, the day, how it was judged, and whether
        the run was recorded elsewhere."""
        machine = self.machine.split(",")[0] if self.machine else None
        parts = [p for p in (machine, self.date, self.judged) if p]
        if self.recorded:
            parts.append("recorded there, kept as made")
        return "; ".join(parts)

    def describe(self) -> str:
        """One line: where, when, with what flags, judged how (and from where it came)."""
        parts = [p for p in (self.machine, self.date, self.flags, self.judged) if p]
        if self.recorded:
            parts.append(f"recorded: {self.recorded}")
        if self.note:
            parts.append(self.note)
        return "; ".join(parts)


def for_run(path: str | Path, run: dict[str, Any]) -> Provenance:
    """The provenance of the run in ``path``: its entry in the folder's provenance.yaml,
    with what run.json itself says filling the gaps (the platform, the day it started, the
    launcher, the expectation file it was judged with)."""
    path = Path(path)
    entry = _entries(path.parent).get(path.name, {})
    machine = run.get("machine") or {}
    backend = run.get("backend") or {}
    chosen = backend.get("expectations") or {}
    judged = "judged raw (--expectations none)" if chosen.get("why", "").startswith(
        "--expectations none") or not chosen.get("file") else \
        f"judged with {Path(chosen['file']).name}"
    booted = backend.get("booted")
    return Provenance(
        name=entry.get("name"),
        machine=entry.get("machine") or machine.get("platform"),
        date=entry.get("date") or str(run.get("started") or "")[:10] or None,
        flags=entry.get("flags") or (f"booted by logprobe with --serve {booted}" if booted else None),
        judged=entry.get("judged") or judged,
        recorded=entry.get("recorded"),
        server_version=entry.get("server_version"),
        note=entry.get("note"),
    )


def load_runs(paths: list[str] | list[Path]) -> tuple[list[dict[str, Any]], list[Provenance]]:
    """The runs and their provenances, in the order their folders' provenance.yaml lists them
    (the README table's order), files it does not list last, as given."""
    from logprobe.report.matrix import load_run

    def rank(path: Path) -> int:
        listed = list(_entries(path.parent))
        return listed.index(path.name) if path.name in listed else len(listed)

    ordered = sorted((Path(p) for p in paths), key=rank)
    runs = [load_run(path) for path in ordered]
    return runs, [for_run(path, run) for path, run in zip(ordered, runs, strict=True)]


def _entries(folder: Path) -> dict[str, dict[str, Any]]:
    path = folder / FILE_NAME
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a mapping of run file names to their provenance")
    unknown = {k for entry in data.values() for k in entry} - set(Provenance.__dataclass_fields__)
    if unknown:
        raise ValueError(f"{path}: unknown fields {sorted(unknown)}")
    return data
