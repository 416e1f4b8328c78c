"""Resolve what the suite talks to: a given ``--endpoint`` or a server booted here.

A preflight request tells an unusable endpoint apart before any test runs, so
a wrong URL ends the run with one clear sentence and a distinct exit code
instead of a hundred identical failures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from logprobe.client import normalise_base_url
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
    """GET /v1/models; return the identity or raise ``EndpointUnusable``."""
    base_url = normalise_base_url(base_url)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with httpx.Client(timeout=timeout, headers=headers) as client:
            response = client.get(base_url + "/models")
            told = _identify(client, base_url, response)
    except httpx.ConnectError as exc:
        hint = ""
        if base_url.startswith("https://") and ("SSL" in str(exc) or "TLS" in str(exc)):
            hint = " (the TLS handshake failed: is it a plain HTTP port? try http://)"
        raise EndpointUnusable(f"cannot connect to {base_url}: {exc}{hint}") from exc
    except httpx.TimeoutException as exc:
        raise EndpointUnusable(f"{base_url} did not answer within {timeout:.0f} s") from exc
    except httpx.HTTPError as exc:
        raise EndpointUnusable(f"{base_url}: {type(exc).__name__}: {exc}") from exc
    if response.status_code in (401, 403):
        raise EndpointUnusable(
            f"{base_url}/models answered {response.status_code}: pass --api-key "
            "(or set OPENAI_API_KEY)"
        )
    try:
        body = response.json()
        models = [m["id"] for m in body["data"] if isinstance(m, dict) and "id" in m]
    except (ValueError, KeyError, TypeError):
        excerpt = response.text[:200].replace("\n", " ")
        if model is None:
            raise EndpointUnusable(
                f"{base_url} does not look like an OpenAI-compatible API: GET /models answered "
                f"HTTP {response.status_code} with {excerpt!r} (pass --model if it has no /models)"
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
        server_header=response.headers.get("server"),
        family=told.family,
        identified_by=told.evidence,
    )


def _identify(client: httpx.Client, base_url: str, models: httpx.Response) -> Identity:
    """What the server says it is (:mod:`logprobe.identity`), asking its root routes."""
    root = base_url[: -len("/v1")]

    def ask(path: str) -> Any:
        try:
            answer = client.get(root + path)
            return answer.json() if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    try:
        body = models.json()
    except ValueError:
        body = None
    return identify(body, models.headers.get("server"), ask)


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

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    headers[PROBE_HEADER] = "logprobs-limit"  # says why this request exists, in any log
    try:
        with httpx.Client(timeout=timeout, headers=headers) as client:
            response = client.post(normalise_base_url(base_url) + "/completions", json={
                "model": model, "prompt": "hi", "max_tokens": 1, "logprobs": asked})
        if not 400 <= response.status_code < 500:
            return None, None
        message = str(response.json()["error"]["message"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None, None
    for pattern in CAP_PATTERNS:
        found = re.search(pattern, message, re.IGNORECASE)
        if found and int(found.group(1)) < asked:
            return int(found.group(1)), message[:300]
    return None, None
