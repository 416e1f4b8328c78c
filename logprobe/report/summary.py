"""The terminal summary of a run: what a person reads first, in about one screen.

A pure function of run.json, so what the terminal says is what the report holds.
Failures and findings come grouped by defect (``logprobe.report.defects``): one line
each, a known defect named with where it was seen, a failing one with a test it broke
and one reproducer. Every finding stays in run.json, row by row.
"""

from __future__ import annotations

from typing import Any

from logprobe.invariants.survival import RUN_NODEID as SERVER_NODEID
from logprobe.report.defects import FAILING_GRADES as FAILING
from logprobe.report.defects import Defect, group

Line = tuple[str, dict[str, bool]]  # a line and its terminal markup (red=True, bold=True)


def _header(run: dict[str, Any]) -> list[Line]:
    backend = run.get("backend") or {}
    lines: list[Line] = [(f"backend: {backend.get('name')}  model: {backend.get('model')}  "
                          f"server version: {backend.get('server_version')}", {})]
    chosen = backend.get("expectations") or {}
    if chosen:
        lines.append((f"expectations: {chosen.get('file') or 'none'} ({chosen.get('why')}); "
                      f"{chosen.get('applied')} of {chosen.get('entries')} entries apply to "
                      "this server version", {}))
    if backend.get("tokenizer"):
        lines.append((f"tokenizer: {backend['tokenizer']}", {}))
    if backend.get("tolerance"):
        lines.append((f"logprob tolerance: {backend['tolerance']}", {}))
    counts = run.get("summary") or {}
    lines.append(("verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), {}))
    return lines


def _rows(run: dict[str, Any]) -> list[Line]:
    """Harness errors and N/A tests, each its own line (a run-level row that failed is a
    defect below)."""
    tests = run.get("tests") or []
    lines: list[Line] = []
    harness = [row for row in tests if row.get("harness_error")]
    if harness:
        lines.append(("harness errors (the suite's own environment, not verdicts on the "
                      "server):", {}))
        lines += [(f"  {row['nodeid']}: {row['message'][:400]}", {}) for row in harness]
    for row in tests:
        if row["verdict"] == "N/A":
            lines.append((f"N/A (nothing to judge, not a pass): {row['nodeid']}: "
                          f"{row['message'][:200]}", {}))
    return lines


def _defect(defect: Defect) -> list[Line]:
    failing = defect.grade in FAILING
    lines: list[Line] = [(f"  {defect.headline()[:300]}", {"red": failing})]
    if defect.looks_like:
        lines.append((f"      looks like: {defect.looks_like['fault']}, seen in "
                      f"{defect.looks_like['seen_in']}", {}))
    if failing and defect.grade != "SERVER_DOWN":
        more = f" (and {len(defect.tests) - 1} more)" if len(defect.tests) > 1 else ""
        lines.append((f"      e.g. {defect.tests[0]}{more}", {}))
        if defect.reproducer:
            lines.append((f"      reproduce: {defect.reproducer}", {}))
    return lines


def _defects(run: dict[str, Any]) -> list[Line]:
    defects = [d for d in group(run) if d.tests != [SERVER_NODEID]]  # the death leads, above
    if not defects:
        return []
    failing = sum(d.grade in FAILING for d in defects)
    findings = len(defects) - failing
    plural = "s" if failing != 1 else ""
    lines: list[Line] = [(f"{failing} failing defect{plural}, {findings} kind"
                          f"{'s' if findings != 1 else ''} of finding (reported, not fatal); "
                          "grouped by invariant and kind of message, every one in run.json:",
                          {"bold": True})]
    for defect in defects:
        lines += _defect(defect)
    return lines


def summary_lines(run: dict[str, Any], report_path: str | None = None) -> list[Line]:
    """The logprobe section of the terminal summary, line by line."""
    tests = run.get("tests") or []
    lines: list[Line] = [(f"{row['verdict']} {row['nodeid']}: {row['message']}",
                          {"red": True, "bold": True})
                         for row in tests if row["nodeid"] == SERVER_NODEID]  # a death leads
    lines += _header(run) + _rows(run) + _defects(run)
    if report_path is not None:
        lines.append((f"report: {report_path}", {}))
    return lines
