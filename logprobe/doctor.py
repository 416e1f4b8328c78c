"""``logprobe doctor``: what the suite learns about a server, on one screen, before any test.

The answers a user pastes into an issue: which server it is and its version, its model,
its logprobs limit, whether lm-eval's own loglikelihood request works (and what lm-eval
would raise if not), which expectation file applies, and whether a tokenizer was found.
It sends three requests (the model list, the limit probe, one lm-eval request) and never
prints the API key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logprobe import expectations
from logprobe.client import RecordingClient
from logprobe.endpoint import BackendIdentity, normalise_base_url, preflight, probe_cap
from logprobe.invariants.lmeval import check_lmeval_response, lmeval_request, predict_lmeval_crash
from logprobe.invariants.readers import completion_logprobs, usage
from logprobe.invariants.shape import check_completions_shape

ECHO_PROMPT = "The capital of France is Paris"
SUITE_DEFAULT_LIMIT = 20


@dataclass
class Diagnosis:
    identity: BackendIdentity
    lines: list[tuple[str, str]]

    def render(self) -> str:
        width = max(len(k) for k, _ in self.lines)
        return "\n".join([f"logprobe doctor: {self.identity.base_url}"]
                         + [f"  {k:<{width}}  {v}" for k, v in self.lines])


def _server(identity: BackendIdentity) -> str:
    name = identity.family or "unnamed (it does not say what it is)"
    version = identity.server_version or "no GET /version"
    told = f"; told by {identity.identified_by}" if identity.identified_by else ""
    header = f"; Server: {identity.server_header}" if identity.server_header else ""
    return f"{name}, {version}{told}{header}"


def _limit(identity: BackendIdentity, cap: int | None, evidence: str | None) -> str:
    if cap is not None:
        return f"{cap} (the server refused 20: {evidence!r}); the suite keeps to it"
    return (f"serves {SUITE_DEFAULT_LIMIT} (or failed otherwise); the suite assumes "
            f"{SUITE_DEFAULT_LIMIT} unless --logprobs-limit says else")


def _echo(base_url: str, api_key: str | None, model: str, timeout: float) -> list[tuple[str, str]]:
    """lm-eval's loglikelihood request, once, judged by the LMEVAL-001 and shape checks."""
    request = lmeval_request(model, ECHO_PROMPT)
    with RecordingClient(base_url, api_key=api_key, timeout=timeout, retries=0) as client:
        answer = client.completions(request)
    if answer.status is None:
        return [("echo", f"no answer: {answer.transport_error}")]
    if answer.status != 200:
        return [("echo", f"HTTP {answer.status}: {answer.text[:200]!r}")]
    body: Any = answer.json
    if body is None:
        return [("echo", f"HTTP 200 with a body that is not JSON: {answer.text[:120]!r}")]
    crash = predict_lmeval_crash(body, [1])
    prompt_tokens = usage(body, "prompt_tokens")
    found = check_lmeval_response(request, body, [prompt_tokens] if prompt_tokens else None)
    found += check_completions_shape(request, body)
    must = [v for v in found if v.level.value == "MUST"]
    choices = body.get("choices") if isinstance(body, dict) else None
    logprobs = completion_logprobs(choices[0]) if isinstance(choices, list) and choices \
        and isinstance(choices[0], dict) else None
    entries = len(logprobs["token_logprobs"]) if logprobs else 0
    if not must:
        verdict = (f"works: {entries} entries for {prompt_tokens} prompt tokens + 1, "
                   "null only at index 0")
    else:
        verdict = "BROKEN: " + "; ".join(sorted({f"{v.id} {v.message}" for v in must}))[:300]
    return [("echo", verdict),
            ("lm-eval", f"would raise {crash}" if crash else "parses this response")]


def _tokenizer(source: str | None, model: str) -> str:
    from logprobe.tokenizer import load_tokenizer

    if source is None:
        if Path(model).is_dir():
            source = model
        else:
            return "none given: token-id checks will skip (pass --tokenizer ID_OR_DIR)"
    try:
        found = load_tokenizer(source)
    except ImportError:
        return f"{source}: needs the tokenizers or transformers package"
    except Exception as exc:  # any loader failure is the answer here
        return f"{source}: cannot load ({type(exc).__name__}: {str(exc)[:120]})"
    return f"{source} (loads, {len(found)} tokens)"


def diagnose(endpoint: str, api_key: str | None = None, model: str | None = None,
             tokenizer: str | None = None, expectations_file: str | None = None,
             timeout: float = 30.0) -> Diagnosis:
    """Raises ``EndpointUnusable`` when the suite could not run against it at all."""
    identity = preflight(normalise_base_url(endpoint), api_key, model)
    cap, evidence = probe_cap(identity.base_url, api_key, identity.model, timeout=timeout)
    chosen = expectations.chosen(expectations_file, identity.family, identity.identified_by)
    applying = len(chosen.applying(identity.server_version))
    known = (f"{chosen.file} ({chosen.why}); {applying} of {len(chosen.entries)} entries apply"
             if chosen.file else f"none ({chosen.why})")
    served = ", ".join(identity.models[:5]) + (" …" if len(identity.models) > 5 else "")
    lines = [("server", _server(identity)),
             ("model", f"{identity.model} (served: {served or 'not listed'})"),
             ("logprobs", _limit(identity, cap, evidence)),
             *_echo(identity.base_url, api_key, identity.model, timeout),
             ("expectations", known),
             ("tokenizer", _tokenizer(tokenizer, identity.model))]
    return Diagnosis(identity, lines)
