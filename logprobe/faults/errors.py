"""Statuses and error bodies: 500s for 4xx, flat error bodies, invalid values accepted,
and the limits a server may legally state."""

from __future__ import annotations

import copy
import json
from typing import Any

from logprobe.faults.body import is_chat, is_completions
from logprobe.faults.registry import fault


@fault("error-as-500",
       "a 4xx for invalid parameters turned into a 500",
       "(synthetic)",
       ("ERR-001", "ERR-002", "ERR-003"),
       on="raw")
def error_as_500(path: str, request: dict[str, Any], status: int, body: bytes) -> tuple[int, bytes]:
    return (500, body) if 400 <= status < 500 else (status, body)


@fault("batch-500",
       "a list of prompts answered with a 500",
       "llama-cpp-python 0.3.36",
       ("ERR-004",),
       properties=False,
       on="raw")
def batch_500(path: str, request: dict[str, Any], status: int, body: bytes) -> tuple[int, bytes]:
    prompt = request.get("prompt")
    if is_completions(path) and isinstance(prompt, list) and prompt \
            and isinstance(prompt[0], str | list):
        error = {"error": {"message": "", "type": "internal_server_error", "param": None,
                           "code": None}}
        return 500, json.dumps(error).encode()
    return status, body


@fault("token-ids-500",
       "a token-id prompt answered with a 500",
       "llama-cpp-python 0.3.36",
       ("ERR-004",),
       on="raw")
def token_ids_500(path: str, request: dict[str, Any], status: int,
                  body: bytes) -> tuple[int, bytes]:
    """A token-id prompt answered with a 500, as llama-cpp-python's validation fails it."""
    prompt = request.get("prompt")
    if is_completions(path) and isinstance(prompt, list) and prompt \
            and all(isinstance(i, int) for i in prompt):
        error = {"error": {"message": "1 validation error for CreateCompletionRequest",
                           "type": "internal_server_error", "param": None, "code": None}}
        return 500, json.dumps(error).encode()
    return status, body


@fault("max-tokens-zero-flat-400",
       "max_tokens 0 refused with a 400 whose body is a flat "
       "{message, type, code}, not an OpenAI error object",
       "LMDeploy 0.18.0",
       ("ERR-004",),
       on="raw")
def max_tokens_zero_flat_400(path: str, request: dict[str, Any], status: int,
                             body: bytes) -> tuple[int, bytes]:
    """``max_tokens: 0`` refused with a 400 whose body is flat, not an OpenAI error object,
    as LMDeploy 0.18.0 answers it (../shared/gpu-runs/lmdeploy-probe.txt)."""
    if is_completions(path) and request.get("max_tokens") == 0:
        flat = {"message": "max_new_tokens must be at least 1, got 0.",
                "type": "invalid_request_error", "code": 400, "param": None, "object": "error"}
        return 400, json.dumps(flat).encode()
    return status, body


@fault("max-tokens-zero-refused",
       "max_tokens 0 refused with a clean 400 (an OpenAI error "
       "object): a limitation, reported",
       "LMDeploy 0.18.0 (with a flat body there)",
       ("ERR-007",),
       fatal=False,
       shows=("ERR-007", "max_new_tokens must be at least 1"),
       properties=False,
       on="raw")
def max_tokens_zero_refused(path: str, request: dict[str, Any], status: int,
                            body: bytes) -> tuple[int, bytes]:
    """The same refusal with an OpenAI error object: a limitation ECHO-003 allows."""
    if is_completions(path) and request.get("max_tokens") == 0:
        error = {"error": {"message": "max_new_tokens must be at least 1, got 0.",
                           "type": "invalid_request_error", "param": "max_tokens", "code": None}}
        return 400, json.dumps(error).encode()
    return status, body


CAPPED_LOGPROBS = 5


@fault("logprobs-cap-5",
       "more than 5 logprobs refused with a clean 400, as vLLM "
       "--max-logprobs 5 does",
       "deployments that lower vLLM's --max-logprobs (a legal "
       "limit: must NOT fail the run)",
       ("ERR-007",),
       fatal=False,
       shows=("ERR-007", "5"),
       properties=False,
       on="raw")
def logprobs_cap(path: str, request: dict[str, Any], status: int, body: bytes) -> tuple[int, bytes]:
    """Refuse more than 5 logprobs (or chat top_logprobs) with vLLM's own words, as a vLLM
    started with --max-logprobs 5 does: a legal limitation the suite must learn and respect."""
    asked = request.get("top_logprobs") if is_chat(path) else request.get("logprobs")
    if isinstance(asked, int) and not isinstance(asked, bool) and asked > CAPPED_LOGPROBS:
        message = (f"Requested sample logprobs of {asked}, which is greater than max allowed: "
                   f"{CAPPED_LOGPROBS} (parameter=logprobs, value={asked})")
        error = {"error": {"message": message, "type": "BadRequestError", "param": "logprobs",
                           "code": 400}}
        return 400, json.dumps(error).encode()
    return status, body


@fault("accept-invalid",
       "invalid logprobs parameters accepted with a 200",
       "llama-cpp-python 0.3.36 (top_logprobs: 25), transformers serve",
       ("ERR-001", "ERR-002", "ERR-003"),
       looks=(("ERR-001", "accepted with a 200"), ("ERR-002", "accepted with a 200"),
              ("ERR-003", "accepted with a 200")),
       on="request")
def accept_invalid(path: str, request: dict[str, Any]) -> dict[str, Any]:
    """Repair invalid logprobs parameters before forwarding, so the server answers 200."""
    request = copy.deepcopy(request)
    if is_chat(path):
        top = request.get("top_logprobs")
        if top is not None:
            if not isinstance(top, int) or isinstance(top, bool) or not 0 <= top <= 20:
                request["top_logprobs"] = 20 if isinstance(top, int | float) and top > 20 else 1
            request["logprobs"] = True
    elif is_completions(path):
        k = request.get("logprobs")
        if isinstance(k, int) and not isinstance(k, bool) and not 0 <= k <= 5:
            request["logprobs"] = 5 if k > 5 else 0
    return request
