"""Resolve what the suite talks to: a given ``--endpoint`` or a server booted here.

A preflight request tells an unusable endpoint apart before any test runs, so
a wrong URL ends the run with one clear sentence and a distinct exit code
instead of a hundred identical failures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from logprobe.client import Exchange, RecordingClient, normalise_base_url
from logprobe.identity import Identity, identify

EXIT_ENDPOINT_UNUSABLE = 6
EXIT_SERVER_START_FAILED = 7


class EndpointUnusable(RuntimeError):
    """The endpoint cannot serve the suite; the message says why and what to do."""


@dataclass
class BackendIdentity:
    base_url: str
    model: str
    models: list[str] = field(default_factory=list)
    server_version: str | None = None
    server_header: str | None = None
    booted: str | None = None  # the launcher that booted it, or None for --endpoint
    # The serving framework, when the server names itself (see ``identify``): which
    # expectation file describes it.
    family: str | None = None
    identified_by: str | None = None
    # The most logprobs the server serves, when it says so in a refusal (see ``probe_cap``).
    logprobs_cap: int | None = None
    logprobs_cap_evidence: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def preflight(
    base_url: str, api_key: str | None, model: str | None, timeout: float = 10.0
) -> BackendIdentity:
    """GET /v1/models; return the identity or raise ``EndpointUnusable``. Sent by the
    recording client, once (no retry: an unusable endpoint is told at once)."""
    base_url = normalise_base_url(base_url)
    with RecordingClient(base_url, api_key=api_key, timeout=timeout, retries=0) as client:
        listed = client.get("/models")
        _raise_if_unanswered(listed, base_url, timeout)
        told = _identify(client, base_url, listed)
    if listed.status in (401, 403):
        raise EndpointUnusable(
            f"{base_url}/models answered {listed.status}: pass --api-key (or set OPENAI_API_KEY)"
        )
    try:
        models = [m["id"] for m in listed.json["data"] if isinstance(m, dict) and "id" in m]
    except (KeyError, TypeError):
        excerpt = listed.text[:200].replace("\n", " ")
        if model is None:
            raise EndpointUnusable(
                f"{base_url} does not look like an OpenAI-compatible API: GET /models answered "
                f"HTTP {listed.status} with {excerpt!r} (pass --model if it has no /models)"
            ) from None
        models = []
    if model is None:
        if not models:
            raise EndpointUnusable(f"{base_url}/models lists no model; pass --model")
        model = models[0]
    return BackendIdentity(
        base_url=base_url,
        model=model,
        models=models,
        server_version=told.version,
        server_header=listed.response_headers.get("server"),
        family=told.family,
        identified_by=told.evidence,
    )


def _raise_if_unanswered(exchange: Exchange, base_url: str, timeout: float) -> None:
    """An endpoint that gave no answer at all, said in one sentence."""
    error = exchange.transport_error
    if error is None or exchange.status is not None:
        return
    if exchange.transport_kind == "connect":
        hint = ""
        if base_url.startswith("https://") and ("SSL" in error or "TLS" in error):
            hint = " (the TLS handshake failed: is it a plain HTTP port? try http://)"
        raise EndpointUnusable(f"cannot connect to {base_url}: {error.split(': ', 1)[-1]}{hint}")
    if exchange.transport_kind == "timeout":
        raise EndpointUnusable(f"{base_url} did not answer within {timeout:.0f} s")
    raise EndpointUnusable(f"{base_url}: {error}")


def _identify(client: RecordingClient, base_url: str, models: Exchange) -> Identity:
    """What the server says it is (:mod:`logprobe.identity`), asking its root routes."""
    root = base_url[: -len("/v1")]

    def ask(path: str) -> Any:
        answer = client.get(root + path)  # an absolute URL: outside /v1
        return answer.json if answer.status == 200 else None

    return identify(models.json, models.response_headers.get("server"), ask)


PROBE_HEADER = "X-Logprobe-Probe"

# vLLM: "Requested sample logprobs of 21, which is greater than max allowed: 20"; others say
# "at most N" or "must be <= N" (TGI's top_n_tokens: "must be <= 5").
CAP_PATTERNS = (r"max(?:imum)? allowed:? *(\d+)", r"at most (\d+)", r"must be <= *(\d+)",
                r"less than or equal to (\d+)")


def probe_cap(base_url: str, api_key: str | None, model: str, asked: int = 20,
              timeout: float = 30.0) -> tuple[int | None, str | None]:
    """Ask for ``asked`` completions logprobs once; a clean 4xx that states a smaller limit
    gives (limit, the server's words). Anything else (it serves them, it fails otherwise)
    gives (None, None): the suite's default limit stands."""
    import re

    # The header says why this request exists, in any log; sent once, never retried.
    with RecordingClient(base_url, api_key=api_key, timeout=timeout, retries=0,
                         headers={PROBE_HEADER: "logprobs-limit"}) as client:
        answer = client.completions({"model": model, "prompt": "hi", "max_tokens": 1,
                                     "logprobs": asked})
    if answer.status is None or not 400 <= answer.status < 500:
        return None, None
    try:
        message = str(answer.json["error"]["message"])
    except (KeyError, TypeError):
        return None, None
    for pattern in CAP_PATTERNS:
        found = re.search(pattern, message, re.IGNORECASE)
        if found and int(found.group(1)) < asked:
            return int(found.group(1)), message[:300]
    return None, None
