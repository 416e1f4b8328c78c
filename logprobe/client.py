"""One HTTP client that records every exchange, so any failure can be replayed.

A conformance suite must see the bytes the server sent, so this is raw httpx,
never an SDK that parses or repairs fields. Every request becomes an
:class:`Exchange` holding the request, status, headers, body and timing; an
exchange renders itself as a ``curl`` command with the API key replaced by
``$OPENAI_API_KEY``, so reproducers and reports never carry the secret.
"""

from __future__ import annotations

import base64
import json
import math
import shlex
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

DEFAULT_TIMEOUT = 120.0
# Retried: a server asking us to slow down, and connections that failed before an
# answer. Never a timeout (it would multiply a hang) and never a verdict.
RETRY_STATUSES = frozenset({429, 503})
RETRY_ERRORS = (httpx.ConnectError, httpx.RemoteProtocolError)
MAX_RETRY_DELAY = 10.0
# A response body beyond this is cut: a hostile server must not exhaust memory.
MAX_BODY_BYTES = 32 * 1024 * 1024
NONSTANDARD_JSON_CONSTANTS = ("NaN", "Infinity", "-Infinity")


class EndpointError(RuntimeError):
    """The endpoint cannot be used at all (unreachable, not an OpenAI API)."""


@dataclass
class Exchange:
    """One request and what came back (or why nothing did)."""

    method: str
    url: str
    request_json: Any
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    elapsed: float = 0.0
    started_at: float = 0.0  # time.monotonic() when the (last) attempt began
    sent_at: float = 0.0  # time.monotonic() when the request was handed to the client
    # time.monotonic() when the first attempt ended: when the server answered, or the
    # connection failed (a request may wait for a free connection after ``sent_at``)
    first_ended_at: float = 0.0
    transport_error: str | None = None
    truncated: bool = False
    stream: bool = False
    _parsed: Any = None
    _parse_error: str | None = None
    _parsed_done: bool = False
    nonstandard_constants: list[str] = field(default_factory=list)
    retries: list[str] = field(default_factory=list)  # what each retried attempt got
    # How the attempt failed without an answer: "connect" (refused, no route, TLS),
    # "timeout", or "transport" (anything else httpx raised); None when it was answered.
    transport_kind: str | None = None
    # With --reference-endpoint: the reference's answer to the same request
    # (``logprobe.mirror``), compared by the judge.
    mirrored: Exchange | None = None

    @property
    def path(self) -> str:
        return httpx.URL(self.url).path

    @property
    def endpoint(self) -> str:
        """The path below the API's base URL (``/completions`` for ``…/v1/completions``), as
        ``RecordingClient.post`` takes it: to send the same request again, anywhere. A
        request outside the API (the server's ``/tokenize``) is its whole URL, which
        ``post`` sends as it is."""
        if "/v1/" not in self.path:
            return self.url
        return "/" + self.path.rstrip("/").rsplit("/v1/", 1)[-1].lstrip("/")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def _parse(self) -> None:
        if self._parsed_done:
            return
        self._parsed_done = True
        seen: list[str] = []

        def constant(name: str) -> float:
            # Python's json accepts NaN/Infinity, which JSON forbids; keep the
            # value (so finiteness checks see it) and remember that it was sent.
            seen.append(name)
            return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[name]

        try:
            self._parsed = json.loads(self.body, parse_constant=constant)
        except (ValueError, UnicodeDecodeError) as exc:
            self._parse_error = f"{type(exc).__name__}: {exc}"
        self.nonstandard_constants = seen

    @property
    def json(self) -> Any:
        """The parsed body, or None when it is not JSON (see ``parse_error``)."""
        self._parse()
        return self._parsed

    @property
    def parse_error(self) -> str | None:
        self._parse()
        return self._parse_error

    @property
    def stream_events(self) -> list[Any]:
        """The ``data:`` payloads of an SSE body, parsed; ``[DONE]`` kept as a string."""
        events: list[Any] = []
        for line in self.text.splitlines():
            if not line.startswith("data:"):
                continue
            payload = line[len("data:"):].strip()
            if payload == "[DONE]":
                events.append("[DONE]")
                continue
            try:
                events.append(json.loads(payload))
            except ValueError:
                events.append({"__unparsed__": payload})
        return events

    def curl(self) -> str:
        """A shell command that sends the same request; the key comes from the environment."""
        parts = ["curl", "-sS", shlex.quote(self.url)]
        if self.method != "GET":
            parts += ["-H", shlex.quote("Content-Type: application/json")]
        parts += ["-H", '"Authorization: Bearer $OPENAI_API_KEY"']
        if isinstance(self.request_json, RawBody):
            parts += ["--data-binary", shlex.quote(self.request_json.content.decode(errors="replace"))]
        elif self.request_json is not None:
            body = json.dumps(self.request_json, ensure_ascii=False, separators=(",", ":"))
            parts += ["-d", shlex.quote(body)]
        return " ".join(parts)

    def summary(self, limit: int = 600) -> str:
        """What came back, trimmed, for failure messages."""
        if self.transport_error:
            return f"no response: {self.transport_error}"
        body = self.text
        if len(body) > limit:
            body = body[:limit] + f"... ({len(self.body)} bytes)"
        return f"HTTP {self.status}: {body}"

    def to_wire(self) -> dict[str, Any]:
        """Everything the checks read, as JSON (the body as base64): an exchange sent by one
        process and judged in another."""
        return {"method": self.method, "url": self.url, "request": self.request_json,
                "status": self.status, "headers": self.response_headers,
                "body": base64.b64encode(self.body).decode("ascii"), "elapsed": self.elapsed,
                "started_at": self.started_at, "sent_at": self.sent_at,
                "first_ended_at": self.first_ended_at,
                "transport_error": self.transport_error, "truncated": self.truncated,
                "stream": self.stream, "retries": self.retries,
                "transport_kind": self.transport_kind,
                "mirrored": self.mirrored.to_wire() if self.mirrored else None}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Exchange:
        return cls(method=data["method"], url=data["url"], request_json=data["request"],
                   status=data["status"], response_headers=data["headers"],
                   body=base64.b64decode(data["body"]), elapsed=data["elapsed"],
                   started_at=data["started_at"], sent_at=data.get("sent_at", 0.0),
                   first_ended_at=data.get("first_ended_at", 0.0),
                   transport_error=data["transport_error"],
                   truncated=data["truncated"], stream=data["stream"], retries=data["retries"],
                   transport_kind=data.get("transport_kind"),
                   mirrored=cls.from_wire(data["mirrored"]) if data.get("mirrored") else None)

    def to_record(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "url": self.url,
            "request": self.request_json,
            "status": self.status,
            "elapsed_s": round(self.elapsed, 4),
            "transport_error": self.transport_error,
            "retries": self.retries,
            "response_excerpt": self.summary(2000),
            "curl": self.curl(),
        }


@dataclass(frozen=True)
class RawBody:
    """A request body sent byte for byte, not serialised from JSON."""

    content: bytes


class RecordingClient:
    """Sends requests to one base URL and keeps every exchange in order."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = 16,
        retries: int = 2,
        backoff: float = 0.5,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.base_url = normalise_base_url(base_url)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        headers = dict(headers or {})  # e.g. the header that marks a probe, before any test
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=max_connections),
        )
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RecordingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str) -> Exchange:
        return self._send("GET", path, None)

    def post(self, path: str, payload: Any) -> Exchange:
        return self._send("POST", path, payload)

    def post_raw(self, path: str, content: bytes) -> Exchange:
        """POST bytes as they are (a malformed JSON body, on purpose)."""
        return self._send("POST", path, RawBody(content))

    def post_many(self, requests: list[tuple[str, Any]]) -> list[Exchange]:
        """POST independent requests at once, exchanges in the order given.

        A server batches concurrent requests: sent together they cost it about one
        request's time, sent in turn one each (the suite is bounded by the server's
        compute, not by its round trips). ``bytes`` bodies go byte for byte.
        """
        def send(item: tuple[str, Any]) -> Exchange:
            path, body = item
            return self.post_raw(path, body) if isinstance(body, bytes) else self.post(path, body)

        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=len(requests)) as pool:
            return list(pool.map(send, requests))

    def completions(self, payload: dict[str, Any]) -> Exchange:
        return self.post("/completions", payload)

    def chat(self, payload: dict[str, Any]) -> Exchange:
        return self.post("/chat/completions", payload)

    def _send(self, method: str, path: str, payload: Any) -> Exchange:
        """Send, retrying with backoff on 429/503 and failed connections; keep the last attempt."""
        history: list[str] = []
        sent_at = time.monotonic()
        first_ended_at = 0.0
        while True:
            exchange, retryable, delay = self._attempt(method, path, payload)
            first_ended_at = first_ended_at or time.monotonic()
            if not retryable or len(history) >= self.retries:
                break
            history.append(_attempt_summary(exchange))
            time.sleep(min(delay if delay is not None else self.backoff * 2 ** len(history),
                           MAX_RETRY_DELAY))
        exchange.retries = history
        exchange.sent_at = sent_at
        exchange.first_ended_at = first_ended_at
        with self._lock:
            self.exchanges.append(exchange)
        return exchange

    def _attempt(self, method: str, path: str, payload: Any) -> tuple[Exchange, bool, float | None]:
        url = path if "://" in path else self.base_url + path  # an absolute URL: outside /v1
        exchange = Exchange(method=method, url=url, request_json=payload)
        exchange.stream = bool(isinstance(payload, dict) and payload.get("stream"))
        started = time.monotonic()
        exchange.started_at = started
        # httpx's timeouts bound each read; a server trickling a byte at a time
        # passes them forever, so the whole exchange also has a deadline.
        deadline = started + self.timeout
        chunks: list[bytes] = []
        try:
            if isinstance(payload, RawBody):
                body = {"content": payload.content,
                        "headers": {"Content-Type": "application/json"}}
            else:
                body = {"json": payload}
            with self._http.stream(method, path, **body) as response:
                exchange.status = response.status_code
                exchange.response_headers = dict(response.headers)
                size = 0
                for chunk in response.iter_bytes():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > MAX_BODY_BYTES:
                        exchange.truncated = True
                        break
                    if time.monotonic() > deadline:
                        raise httpx.ReadTimeout(f"the response took longer than {self.timeout:g} s")
        except httpx.HTTPError as exc:
            exchange.transport_error = f"{type(exc).__name__}: {exc}"
            exchange.transport_kind = ("connect" if isinstance(exc, httpx.ConnectError) else
                                       "timeout" if isinstance(exc, httpx.TimeoutException)
                                       else "transport")
            retry_error = isinstance(exc, RETRY_ERRORS)
        else:
            retry_error = False
        exchange.body = b"".join(chunks)[:MAX_BODY_BYTES]
        exchange.elapsed = time.monotonic() - started
        retryable = retry_error or exchange.status in RETRY_STATUSES
        return exchange, retryable, _retry_after(exchange)


def _attempt_summary(exchange: Exchange) -> str:
    """What a failed attempt got: a status, a transport error, or a body cut off after a status."""
    if exchange.transport_error and exchange.status is not None:
        return f"HTTP {exchange.status}, then {exchange.transport_error} (the body was cut off)"
    return exchange.transport_error or f"HTTP {exchange.status}"


def _retry_after(exchange: Exchange) -> float | None:
    """Seconds from a numeric Retry-After header, if the server sent one."""
    value = exchange.response_headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def normalise_base_url(url: str) -> str:
    """Accept ``http://host:port``, ``…/v1`` or ``…/v1/``; return ``…/v1``."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    if not url.endswith("/v1"):
        url += "/v1"
    return url
