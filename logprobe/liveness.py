"""Whether the server is still up; what a test does once it is not; which request killed it.

A request can take a server down (SRV-001, ``logprobe.invariants.survival``). From then on
every request is refused, and a test that reports that with its request's curl blames a
request the server never saw. So when an exchange gets no answer at all, the suite asks
whether the server is down: a booted server's (or the fault proxy's) process has exited,
or the endpoint refuses or resets connections to ``GET /models`` on three tries a second
apart. A server that answers anything, even a 5xx, is up: a broken server is judged by
its answers, and only a server that stopped accepting connections is called down.

Once down, a test stops with :class:`ServerDown`, and every later test of the process
(and, through a marker file in the run's share directory, of every xdist worker) is not
reached. Each process that learns of the death once attaches its recent exchanges to the
row of the test that learnt it, so the run-level finding sees every worker's traffic.
When the suite started what died, ``narrow`` restarts it and replays the suspects alone.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from logprobe.client import Exchange, RawBody, RecordingClient

PROBE_TRIES = 3
PROBE_PAUSE = 1.0
PROBE_TIMEOUT = 10.0
RECENT_SECONDS = 600.0  # how far back a worker's exchanges are kept as evidence
RECENT_MAX = 40
MARKER = "server-down.json"


class ServerDown(BaseException):
    """The server is down: the test stops here.

    A BaseException, so that hypothesis does not take it for a failing example and shrink
    against a dead server (every candidate would fail, and the report would show the
    smallest of them), and so that no test's ``except Exception`` hides it.
    ``exchange``: the request that found it down (None: known before the test sent one).
    What the process saw before the death is not carried here (hypothesis may replace the
    exception on its way out): the plugin attaches ``Watch.evidence`` to the row of the
    first test that ends once the death is known.
    """

    def __init__(self, reason: str, exchange: Exchange | None = None):
        super().__init__(reason)
        self.reason = reason
        self.exchange = exchange

    @property
    def reached(self) -> bool:
        """The request that found the server down had reached it (it was in flight when
        the server went down): a suspect, not a bystander."""
        from logprobe.invariants.survival import kind

        return self.exchange is not None and kind(record(self.exchange)) != "refused"


class DownBeforeTest(Exception):
    """``ServerDown`` raised by a fixture, as a test's setup error: pytest's fixture
    machinery keeps a fixture's state only for an Exception (a BaseException there leaves
    it half set up, and every later test using the fixture fails inside pytest)."""

    def __init__(self, down: ServerDown):
        super().__init__(down.reason)
        self.down = down


def down_of(exc: BaseException | None) -> ServerDown | None:
    """The ``ServerDown`` a test stopped on, raised in its body or in a fixture."""
    if isinstance(exc, ServerDown):
        return exc
    return exc.down if isinstance(exc, DownBeforeTest) else None


def record(exchange: Exchange) -> dict[str, Any]:
    """An exchange as SRV-001's evidence keeps it: when it was sent and when its first
    attempt ended (on the machine-wide monotonic clock), what came back, and how to send
    it again."""
    out: dict[str, Any] = {
        "sent_at": exchange.sent_at or exchange.started_at,
        "ended_at": exchange.first_ended_at or exchange.started_at + exchange.elapsed,
        "elapsed": round(exchange.elapsed, 4),
        "method": exchange.method, "url": exchange.url, "endpoint": exchange.endpoint,
        "status": exchange.status, "transport_error": exchange.transport_error,
        "retries": list(exchange.retries), "summary": _what_came_back(exchange),
        "curl": exchange.curl()}
    if isinstance(exchange.request_json, RawBody):
        out["raw_body"] = base64.b64encode(exchange.request_json.content).decode("ascii")
    else:
        out["request"] = exchange.request_json
    return out


def _what_came_back(exchange: Exchange) -> str:
    """The first attempt's fate, then the last's: a request reset in flight and then refused
    on its retries was in flight when the server went."""
    if exchange.retries:
        return f"first {exchange.retries[0]}; last {exchange.summary(160)}"
    return exchange.summary(200)


def probe(base_url: str, api_key: str | None) -> str | None:
    """Why the endpoint is down (refused or reset connections on every try), else None."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    failures = []
    with httpx.Client(timeout=PROBE_TIMEOUT, headers=headers) as client:
        for attempt in range(PROBE_TRIES):
            try:
                client.get(base_url.rstrip("/") + "/models")
                return None  # any answer: up
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
            except httpx.TimeoutException:
                return None  # slow is not down
            if attempt + 1 < PROBE_TRIES:
                time.sleep(PROBE_PAUSE)
    return f"GET /models failed {PROBE_TRIES} times, {PROBE_PAUSE:g} s apart ({failures[-1]})"


def process_gone(backend: Any) -> str | None:
    """Why the server's or the fault proxy's process is gone (with its exit code where this
    process started it), or None while both live."""
    for name, process in (("the server", getattr(backend, "process", None)),
                          ("the fault proxy", getattr(backend, "proxy", None))):
        if process is not None and not process.alive():
            code = getattr(getattr(process, "proc", None), "returncode", None)
            return f"{name}'s process exited" + (f" with code {code}" if code is not None
                                                 else "")
    return None


class Watch:
    """One process's view of whether the server is up."""

    def __init__(self, backend: Any, base_url: str, api_key: str | None,
                 client: Callable[[], RecordingClient | None], share_dir: Path | None):
        self.backend = backend
        self.base_url = base_url
        self.api_key = api_key
        self._client = client  # the run's client, once its fixture made it
        self.share_dir = share_dir
        self.reason: str | None = None
        self._evidence_given = False


    def _marked(self) -> str | None:
        if self.share_dir is None:
            return None
        try:
            return str(json.loads((self.share_dir / MARKER).read_text())["reason"])
        except (OSError, ValueError, KeyError):
            return None

    def _learn(self, reason: str) -> None:
        self.reason = reason
        if self.share_dir is not None:
            marker = self.share_dir / MARKER
            if not marker.exists():
                partial = marker.with_suffix(".partial")
                partial.write_text(json.dumps({"reason": reason}))
                partial.replace(marker)

    def known_down(self) -> str | None:
        """Cheap: what this process or another worker already learnt, or a dead process."""
        if self.reason is None:
            reason = self._marked() or process_gone(self.backend)
            if reason is not None:
                self._learn(reason)
        return self.reason

    def stop_if_down(self) -> None:
        """Before a test sends anything: raise ``ServerDown`` if the server is known down."""
        reason = self.known_down()
        if reason is not None:
            raise ServerDown(reason, None)

    def after_failure(self, exchange: Exchange) -> None:
        """An exchange got no answer: raise ``ServerDown`` if the server is down."""
        reason = self.known_down() or probe(self.base_url, self.api_key)
        if reason is None:
            return
        self._learn(reason)
        raise ServerDown(reason, exchange)

    def evidence(self) -> dict[str, Any] | None:
        """This process's recent exchanges, once, when the server is known down: for the
        run-level finding."""
        if self._evidence_given or self.known_down() is None:
            return None
        self._evidence_given = True
        client = self._client()
        exchanges = list(client.exchanges) if client is not None else []
        now = time.monotonic()
        recent = [e for e in exchanges if now - (e.sent_at or e.started_at) <= RECENT_SECONDS]
        recent = sorted(recent, key=lambda e: e.sent_at or e.started_at)[-RECENT_MAX:]
        return {"reason": self.reason, "detected_at": now, "exchanges": [record(e) for e in recent]}


def _replay(client: RecordingClient, suspect: dict[str, Any]) -> Exchange:
    if "raw_body" in suspect:
        return client.post_raw(suspect["endpoint"], base64.b64decode(suspect["raw_body"]))
    if suspect["method"] == "GET":
        return client.get(suspect["endpoint"])
    return client.post(suspect["endpoint"], suspect.get("request"))


def restartable(backend: Any) -> list[Any]:
    """What the suite started and can start again: the booted server, the fault proxy."""
    from logprobe.launch.process import ServerProcess

    return [p for p in (getattr(backend, "process", None), getattr(backend, "proxy", None))
            if isinstance(p, ServerProcess)]


def _restart(parts: list[Any], base_url: str, api_key: str | None,
             restarted: list[dict[str, Any]]) -> str | None:
    """Start again what died (everything, if all lives but the endpoint is down); why not.
    Each start is added to ``restarted`` (its name and pid, for the report)."""
    from logprobe.launch.process import ServerStartError

    dead = [p for p in parts if not p.alive()] or parts
    for part in dead:  # the server before the proxy in front of it
        part.stop()
        try:
            part.start()
        except ServerStartError as exc:
            return f"{part.name} did not start again: {str(exc).splitlines()[0]}"
        restarted.append({"name": part.name, "pid": part.proc.pid if part.proc else None,
                          "ready_seconds": round(part.ready_seconds or 0.0, 1)})
    return probe(base_url, api_key)


def narrow(backend: Any, suspects: list[dict[str, Any]], api_key: str | None,
           timeout: float) -> dict[str, Any]:
    """Restart what the suite started and replay each suspect alone, in order, until one
    takes the server down again: that one is the killer. Returns ``{"killer": record or
    None, "replayed": n, "why": ...}``."""
    parts = restartable(backend)
    if not parts:
        return {"killer": None, "replayed": 0,
                "why": "the suite did not start this server and cannot restart it (boot it "
                       "with --serve to have the suspects replayed one by one)"}
    if not suspects:
        return {"killer": None, "replayed": 0, "why": "there was no suspect to replay"}
    base_url = backend.identity.base_url
    replayed, restarted = 0, []
    with RecordingClient(base_url, api_key=api_key, timeout=timeout, retries=0) as client:
        for suspect in suspects:
            why = _restart(parts, base_url, api_key, restarted) \
                if any(not p.alive() for p in parts) or probe(base_url, api_key) else None
            if why is not None:
                return {"killer": None, "replayed": replayed, "restarted": restarted,
                        "why": f"the server could not be restarted to replay them ({why})"}
            exchange = _replay(client, suspect)
            replayed += 1
            time.sleep(PROBE_PAUSE)  # a dying server may take a moment to stop
            gone = next((f"{p.name} exited" for p in parts if not p.alive()), None) or \
                probe(base_url, api_key)
            if gone is not None:
                killer = dict(suspect)
                killer["replay"] = {"summary": exchange.summary(200), "then": gone}
                return {"killer": killer, "replayed": replayed, "restarted": restarted,
                        "why": None}
    return {"killer": None, "replayed": replayed, "restarted": restarted,
            "why": f"each of the {replayed} suspects, replayed alone on a restarted server, left "
                   "it up (the death needs requests together, or came from elsewhere)"}
