"""How a server names its framework and version, in its own words.

Which expectation file applies, and which server version a report names, come from
what the server says about itself, never from a guess:

* ``GET /v1/models``, the ``owned_by`` its code writes: vLLM ``"vllm"``
  (vllm/entrypoints/openai/serving_models.py), llama-cpp-python ``"me"``
  (llama_cpp/server/app.py), llama.cpp's server ``"llamacpp"`` (tools/server), SGLang
  ``"sglang"``, LMDeploy ``"lmdeploy"``;
* the ``Server`` header: llama.cpp's server sends ``Server: llama.cpp``;
* ``GET /version`` (vLLM, SGLang: ``{"version": ...}``), ``GET /props`` (llama.cpp:
  ``build_info`` such as ``b10434-7e4c0a9``), ``GET /info`` (TGI: ``router`` is
  ``text-generation-router``, with ``version``), ``GET /get_server_info`` (SGLang: its
  server arguments and ``version``).

The routes beyond ``/version`` are asked only where they can add something, so a
server that says nothing costs the preflight three quick 404s at most. A gateway may
hide all of it: then the family is None and the run says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

OWNED_BY_FAMILY = {"vllm": "vllm", "me": "llama-cpp", "llamacpp": "llama-server",
                   "sglang": "sglang", "lmdeploy": "lmdeploy"}
SERVER_HEADER_FAMILY = {"llama.cpp": "llama-server"}
TGI_ROUTER = "text-generation-router"


@dataclass(frozen=True)
class Identity:
    family: str | None
    version: str | None
    evidence: str | None  # how the server told us, for the run's header


def identify(models: Any, server_header: str | None,
             ask: Callable[[str], Any]) -> Identity:
    """The framework and version from a ``/v1/models`` body, the ``Server`` header, and
    ``ask(path)``: the JSON body of ``GET path`` at the server's root, or None."""
    said: list[str] = []
    family = _owned_by(models, said)
    if family is None and server_header in SERVER_HEADER_FAMILY:
        family = SERVER_HEADER_FAMILY[server_header]
        said.append(f"Server: {server_header}")
    version = _field(ask("/version"), "version")
    if version:
        said.append(f"GET /version {version}")
    if family == "llama-server" and not version:
        version = _field(ask("/props"), "build_info")
        if version:
            said.append(f"GET /props build_info {version}")
    if family is None:
        info = ask("/info")
        if isinstance(info, dict) and info.get("router") == TGI_ROUTER:
            family, version = "tgi", version or _field(info, "version")
            said.append(f"GET /info router {TGI_ROUTER!r}" + (f", version {version}" if version
                                                              else ""))
    if family is None or (family == "sglang" and not version):
        server_info = ask("/get_server_info")
        if isinstance(server_info, dict) and _field(server_info, "version") and \
                "model_path" in server_info:
            family, version = "sglang", version or _field(server_info, "version")
            said.append(f"GET /get_server_info version {version}")
    if family is None:
        return Identity(None, version, None)
    return Identity(family, version, ", ".join(said))


def _owned_by(models: Any, said: list[str]) -> str | None:
    data = models.get("data") if isinstance(models, dict) else None
    owners = {m.get("owned_by") for m in data or [] if isinstance(m, dict)}
    for owner in sorted(o for o in owners if isinstance(o, str)):
        family = OWNED_BY_FAMILY.get(owner)
        if family:
            said.append(f"GET /v1/models owned_by {owner!r}")
            return family
    return None


def _field(body: Any, key: str) -> str | None:
    value = body.get(key) if isinstance(body, dict) else None
    return str(value) if value not in (None, "") else None
