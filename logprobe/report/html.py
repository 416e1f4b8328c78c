"""``logprobe report RUN.json... -o matrix.html``: one self-contained page, no network.

The page answers "which serving framework can I adopt?" side by side:

* the backend x invariant matrix, coloured by verdict, each cell naming the
  tests behind it;
* a score per backend that lists its failing MUST invariants next to the number,
  so a high score never hides a failure;
* one plot per backend: echo (prompt) logprobs against teacher-forced logprobs
  for the same tokens, where a server that shifts prompt logprobs by one
  position leaves the diagonal at a glance;
* a drill-down per failure: the message, the request, the response excerpt and
  the ``curl`` reproducer.

No script, no external font or stylesheet: it opens from a CI artifact store.
"""

from __future__ import annotations

import html
import json
from typing import Any

from logprobe.invariants import numerics
from logprobe.report.matrix import FAILING, SEVERITY, Column, catalogue, column, invariant_levels
from logprobe.report.provenance import Provenance
from logprobe.tolerance import DEFAULT, Drift

COLOURS = {
    "FAIL": "#d64545", "ERROR": "#8e2c8e", "UNSUPPORTED": "#e0882f", "IGNORED": "#c9a227",
    "XPASS": "#d64545", "EXPECTED": "#9aa7b8", "SHOULD": "#8fc1e3", "INFO": "#cfe3f0",
    "PASS": "#3f9c5a", "N/A": "#dcdcdc", "SKIP": "#eeeeee", "NOT_REACHED": "#eeeeee",
    "SERVER_DOWN": "#b8bec9",
}
LABELS = {"NOT_REACHED": "not reached", "EXPECTED": "expected", "N/A": "nothing to judge",
          "SERVER_DOWN": "server down"}

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2330}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.sub{color:#5b6475;margin:0 0 16px}
table.matrix{border-collapse:collapse} .matrix th,.matrix td{border:1px solid #d5d9e0;padding:3px 6px}
.matrix th{background:#f4f6f9;text-align:left;font-weight:600}
.matrix td.cell{text-align:center;font-size:12px;min-width:110px;color:#fff;font-weight:600}
.matrix td.cell.light{color:#1d2330}
.matrix td.stmt{max-width:520px;color:#394152;font-size:12.5px}
.lvl{font-size:11px;color:#5b6475}
.legend span{display:inline-block;padding:2px 8px;margin:0 4px 4px 0;border-radius:3px;font-size:12px}
.score{margin:4px 0} .score b{font-size:15px} .bad{color:#b02a2a}
details{margin:6px 0;border:1px solid #d5d9e0;border-radius:4px;padding:4px 8px}
summary{cursor:pointer;font-weight:600}
pre{background:#f6f8fa;padding:8px;overflow-x:auto;font-size:12px;white-space:pre-wrap;word-break:break-all}
.plots{display:flex;flex-wrap:wrap;gap:18px} figure{margin:0} figcaption{font-size:12.5px;color:#394152}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _light(status: str) -> bool:
    return status in ("EXPECTED", "SHOULD", "INFO", "NOT_REACHED", "IGNORED", "N/A", "SKIP",
                      "SERVER_DOWN")


def _matrix(columns: list[Column], invariants: dict[str, Any]) -> str:
    ids = sorted({i for c in columns for i in c.cells}, key=lambda i: (i.split("-")[0], i))
    head = "".join(f"<th>{_e(c.name)}</th>" for c in columns)
    rows = []
    for inv in ids:
        decl = invariants.get(inv)
        level = decl.level.value if decl else "?"
        statement = decl.statement if decl else ""
        cells = []
        for col in columns:
            cell = col.cells.get(inv)
            status = cell.status if cell else "NOT_REACHED"
            tests = "\n".join(cell.tests) if cell else "no test of this run judged it"
            cls = "cell light" if _light(status) else "cell"
            cells.append(f'<td class="{cls}" style="background:{COLOURS[status]}" '
                         f'title="{_e(tests)}" data-status="{status}">'
                         f"{_e(LABELS.get(status, status))}</td>")
        rows.append(f'<tr><th>{_e(inv)} <span class="lvl">{level}</span></th>'
                    f'<td class="stmt">{_e(statement)}</td>{"".join(cells)}</tr>')
    return (f'<table class="matrix" id="matrix"><tr><th>invariant</th><th>what it asserts</th>'
            f'{head}</tr>{"".join(rows)}</table>')


def _legend() -> str:
    spans = "".join(
        f'<span style="background:{COLOURS[s]};color:{"#1d2330" if _light(s) else "#fff"}">'
        f"{_e(LABELS.get(s, s))}</span>" for s in SEVERITY)
    return f'<p class="legend">{spans}</p>'


def _scores(columns: list[Column], levels: dict[str, str],
            provenances: list[Provenance]) -> str:
    out = []
    for col, origin in zip(columns, provenances, strict=True):
        passed, reached, failing = col.score(levels)
        summary = ", ".join(f"{k} {v}" for k, v in sorted((col.run.get("summary") or {}).items()))
        backend = col.run.get("backend") or {}
        failing_html = (f' — <span class="bad">failing: {_e(", ".join(failing))}</span>'
                        if failing else " — no MUST invariant fails")
        out.append(f'<p class="score"><b>{_e(col.name)}</b>: {passed}/{reached} judged MUST '
                   f"invariants hold{failing_html}<br><span class=\"lvl\">tests: {_e(summary)}; model "
                   f"{_e(backend.get('model'))}; server version "
                   f"{_e(server_version(col.run, origin))}; run "
                   f"{_e(col.run.get('started'))}</span><br><span class=\"lvl\" "
                   f"data-provenance=\"\">where and how: {_e(origin.describe())}</span></p>")
    return "".join(out)


def paired_points(run: dict[str, Any], key: str, first: str,
                  second: str) -> list[tuple[float, float]]:
    """(first, second) logprob pairs that tests measured under ``key`` (judge.measure)."""
    points = []
    for row in run.get("tests", []):
        pair = (row.get("data") or {}).get(key)
        if not pair:
            continue
        for a, b in zip(pair.get(first) or [], pair.get(second) or [], strict=False):
            if isinstance(a, int | float) and isinstance(b, int | float):
                points.append((float(a), float(b)))
    return points


def echo_points(run: dict[str, Any]) -> list[tuple[float, float]]:
    """(teacher-forced, echoed) logprob pairs from the LMEVAL teacher-forcing tests."""
    return paired_points(run, numerics.MEASURE, "teacher", "echo")


def oracle_points(run: dict[str, Any]) -> list[tuple[float, float]]:
    """(reference model, server) logprob pairs from the ORACLE test."""
    return paired_points(run, "oracle", "reference", "server")


def _plot(col: Column, points: list[tuple[float, float]], x_label: str = "teacher-forced logprob",
          y_label: str = "echo logprob", size: int = 260) -> str:
    bound = DEFAULT.per_token  # what GPU prefill/decode drift may reach (logprobe/tolerance.py)
    drift = Drift.between([t for t, _ in points], [e for _, e in points])
    pad = 34
    if not points:
        body = (f'<text x="{size / 2}" y="{size / 2}" text-anchor="middle" font-size="12" '
                f'fill="#5b6475">no pair measured</text>')
        off = 0
    else:
        low = min(0.0, min(min(p) for p in points))
        low = min(low, -1.0) * 1.05
        span = -low

        def x(v: float) -> float:
            return pad + (v - low) / span * (size - pad - 8)

        def y(v: float) -> float:
            return size - pad - (v - low) / span * (size - pad - 8)

        dots = "".join(f'<circle cx="{x(t):.1f}" cy="{y(min(max(e, low), 0)):.1f}" r="3.2" '
                       f'fill="{"#3f9c5a" if abs(e - t) <= bound else "#d64545"}" fill-opacity="0.8"/>'
                       for t, e in points)
        off = sum(1 for t, e in points if abs(e - t) > bound)
        body = (f'<line x1="{x(low):.1f}" y1="{y(low):.1f}" x2="{x(0):.1f}" y2="{y(0):.1f}" '
                f'stroke="#9aa7b8" stroke-dasharray="4 3"/>{dots}'
                f'<text x="{x(low):.1f}" y="{size - 8}" font-size="11" fill="#5b6475">{low:.0f}</text>'
                f'<text x="{x(0) - 6:.1f}" y="{size - 8}" font-size="11" fill="#5b6475">0</text>')
    axes = (f'<line x1="{pad}" y1="{size - pad}" x2="{size - 8}" y2="{size - pad}" stroke="#394152"/>'
            f'<line x1="{pad}" y1="8" x2="{pad}" y2="{size - pad}" stroke="#394152"/>'
            f'<text x="{size / 2}" y="{size - 18}" text-anchor="middle" font-size="11">'
            f"{_e(x_label)}</text>"
            f'<text x="12" y="{size / 2}" font-size="11" text-anchor="middle" '
            f'transform="rotate(-90 12 {size / 2})">{_e(y_label)}</text>')
    caption = (f"{_e(col.name)}: {len(points)} tokens, {off} off the diagonal (|Δ| &gt; "
               f"{bound:g} nats); drift max {drift.max:.3g}, median {drift.median:.3g}"
               if points else f"{_e(col.name)}")
    return (f'<figure><svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
            f'role="img" aria-label="{_e(y_label)} against {_e(x_label)} for {_e(col.name)}">'
            f"{axes}{body}</svg><figcaption>{caption}</figcaption></figure>")


def _oracle_section(columns: list[Column]) -> str:
    """The server's prompt logprobs against the served model's own (ORACLE-001), per run
    that had a reference model."""
    plots = [_plot(c, oracle_points(c.run), "reference model (float32) logprob",
                   "server logprob") for c in columns if oracle_points(c.run)]
    if not plots:
        return ""
    return ("<h2>Against the reference model</h2><p class=\"sub\">The same prompt tokens, "
            "scored by the server (echo) and by the served model run locally in float32. A "
            "bf16 or quantised server stays near the diagonal (median 0.02 nats); a wrong "
            f'model or softmax does not.</p><div class="plots">{"".join(plots)}</div>')


def _defects(col: Column) -> str:
    """The run's failing defects, one row each (``logprobe.report.defects``)."""
    from logprobe.report.defects import FAILING_GRADES, group

    defects = [d for d in group(col.run) if d.grade in FAILING_GRADES]
    if not defects:
        return ""
    rows = []
    for d in defects:
        known = (f"<br><i>looks like</i> {_e(d.looks_like['fault'])}, seen in "
                 f"{_e(d.looks_like['seen_in'])}") if d.looks_like else ""
        curl = f"<pre>{_e(d.reproducer)}</pre>" if d.reproducer else ""
        tests = "<br>".join(_e(t) for t in d.tests[:8]) + (
            f"<br>and {len(d.tests) - 8} more" if len(d.tests) > 8 else "")
        what = d.looks_like["description"] if d.looks_like else d.example
        rows.append(f"<tr><td>{_e(d.grade)}</td><td>{_e(', '.join(d.invariants) or '-')}</td>"
                    f"<td>{len(d.tests)}</td><td>{_e(what)}"
                    f"{known}<details><summary>tests, reproducer</summary>{tests}{curl}</details>"
                    "</td></tr>")
    return (f"<h3>{_e(col.name)}: {len(defects)} defect{'s' if len(defects) != 1 else ''}</h3>"
            '<table class="defects"><tr><th>verdict</th><th>invariants</th><th>tests</th>'
            f"<th>defect</th></tr>{''.join(rows)}</table>")


def _failures(col: Column) -> str:
    rows = [r for r in col.run.get("tests", []) if r.get("verdict") in FAILING]
    if not rows:
        return f"<p>{_e(col.name)}: no failing test.</p>"
    parts = [f"<h3>{_e(col.name)}: {len(rows)} failing tests</h3>"]
    for row in rows:
        exchanges = row.get("exchanges") or []
        detail = []
        for exchange in exchanges[:2]:
            detail.append("<b>request</b><pre>" + _e(json.dumps(exchange.get("request"), indent=1,
                                                                ensure_ascii=False)[:3000])
                          + "</pre><b>response</b><pre>"
                          + _e(str(exchange.get("response_excerpt", ""))[:3000]) + "</pre>")
        curls = "".join(f"<pre>{_e(c)}</pre>" for c in (row.get("reproducers") or [])[:3])
        parts.append(
            f"<details><summary>{_e(row['verdict'])} {_e(', '.join(row.get('violated') or []))} "
            f"— {_e(row['nodeid'])}</summary><pre>{_e(row.get('message', '')[:4000])}</pre>"
            f"{''.join(detail)}<b>reproduce</b>{curls}</details>")
    return "".join(parts)


def server_version(run: dict[str, Any], origin: Provenance) -> str:
    """The server's own version, else the one its provenance records (LMDeploy reports none)."""
    said = (run.get("backend") or {}).get("server_version")
    if said:
        return str(said)
    return f"{origin.server_version} (recorded with the run)" if origin.server_version \
        else "not reported"


def render(runs: list[dict[str, Any]], names: list[str] | None = None,
           title: str = "logprobe: logprobs conformance by backend",
           provenances: list[Provenance] | None = None) -> str:
    provenances = provenances or [Provenance() for _ in runs]
    columns = [column(run, names[i] if names and i < len(names) else provenances[i].name)
               for i, run in enumerate(runs)]
    invariants = catalogue(runs)
    levels = invariant_levels(runs)
    suite = (runs[0].get("suite") or {}) if runs else {}
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{_e(title)}</h1><p class=\"sub\">{_e(suite.get('name', 'logprobe'))} "
        f"{_e(suite.get('version', ''))}; {len(runs)} run(s). Hover a cell for the tests behind "
        "it.</p>"
        f"<h2>Scores (MUST invariants; failures listed, never averaged away)</h2>"
        f"{_scores(columns, levels, provenances)}"
        f"<h2>Echo against teacher forcing</h2><p class=\"sub\">The same continuation tokens "
        "scored two ways: generated after the context (teacher-forced) and echoed as part of "
        "the prompt, as lm-eval asks. A conforming server puts every point on the diagonal.</p>"
        f'<div class="plots">{"".join(_plot(c, echo_points(c.run)) for c in columns)}</div>'
        f"{_oracle_section(columns)}"
        f"<h2>Matrix</h2>{_legend()}{_matrix(columns, invariants)}"
        f"<h2>Defects</h2><p class=\"sub\">The failures grouped: one invariant, one kind of "
        "message; a defect the fault registry models is named.</p>"
        f"{''.join(_defects(c) for c in columns)}"
        f"<h2>Failures</h2>{''.join(_failures(c) for c in columns)}"
        "</body></html>"
    )


def markdown_table(runs: list[dict[str, Any]], provenances: list[Provenance] | None = None) -> str:
    """The README's compatibility table: one row per backend, its score and failing MUSTs, and
    where and how it ran (a GPU run recorded elsewhere says so)."""
    provenances = provenances or [Provenance() for _ in runs]
    levels = invariant_levels(runs)
    lines = ["| backend | server version | judged MUST invariants holding | failing MUST "
             "invariants | tests | where and how it ran |", "|---|---|---|---|---|---|"]
    for run, origin in zip(runs, provenances, strict=True):
        col = column(run, origin.name)
        passed, reached, failing = col.score(levels)
        summary = ", ".join(f"{k} {v}" for k, v in sorted((run.get("summary") or {}).items()))
        lines.append(f"| {col.name} | {server_version(run, origin)} | {passed}/{reached} | "
                     f"{', '.join(failing) or '—'} | {summary} | {origin.short() or '—'} |")
    return "\n".join(lines)
