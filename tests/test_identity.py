"""Which framework a server is, from its own words: the answers below are real ones (llama.cpp's
server b10434 here; vLLM 0.32.0 here; TGI's /info and SGLang's /get_server_info as their
code writes them)."""

from __future__ import annotations

from typing import Any

from logprobe.expectations import default_file
from logprobe.identity import identify

LLAMA_SERVER_MODELS = {"object": "list", "data": [{"id": "smollm2", "aliases": ["smollm2"],
                                                  "object": "model", "owned_by": "llamacpp"}]}
LLAMA_SERVER_PROPS = {"total_slots": 4, "model_alias": "smollm2", "build_info": "b1-7e4c0a9"}
VLLM_MODELS = {"object": "list", "data": [{"id": "smollm2", "object": "model", "owned_by": "vllm"}]}
TGI_INFO = {"model_id": "/models/m", "router": "text-generation-router", "version": "3.2.1",
            "max_best_of": 2}
SGLANG_SERVER_INFO = {"model_path": "/models/m", "random_seed": 0, "version": "0.5.23"}
ANONYMOUS_MODELS = {"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "me-corp"}]}


def _answers(**routes: Any):
    asked: list[str] = []

    def ask(path: str) -> Any:
        asked.append(path)
        return routes.get(path.strip("/").replace("/", "_"))

    return ask, asked


def test_llama_server_by_owned_by_and_its_build_from_props():
    ask, _ = _answers(props=LLAMA_SERVER_PROPS)
    told = identify(LLAMA_SERVER_MODELS, "llama.cpp", ask)
    assert (told.family, told.version) == ("llama-server", "b1-7e4c0a9")
    assert told.evidence == "GET /v1/models owned_by 'llamacpp', GET /props build_info b1-7e4c0a9"
    assert default_file(told.family) is not None  # its expectation file exists


def test_llama_server_behind_a_gateway_that_rewrites_owned_by_is_known_by_its_header():
    ask, _ = _answers(props=LLAMA_SERVER_PROPS)
    told = identify(ANONYMOUS_MODELS, "llama.cpp", ask)
    assert told.family == "llama-server" and told.evidence.startswith("Server: llama.cpp")


def test_vllm_as_before():
    ask, asked = _answers(version={"version": "0.32.0"})
    told = identify(VLLM_MODELS, "uvicorn", ask)
    assert (told.family, told.version) == ("vllm", "0.32.0")
    assert told.evidence == "GET /v1/models owned_by 'vllm', GET /version 0.32.0"
    assert asked == ["/version"]  # nothing more is asked of a server that said who it is


def test_tgi_by_its_info_route():
    ask, _ = _answers(info=TGI_INFO)
    told = identify(ANONYMOUS_MODELS, None, ask)
    assert (told.family, told.version) == ("tgi", "3.2.1")


def test_sglang_by_its_server_info():
    ask, _ = _answers(get_server_info=SGLANG_SERVER_INFO)
    told = identify({"data": [{"id": "m", "owned_by": "sglang"}]}, "uvicorn", ask)
    assert (told.family, told.version) == ("sglang", "0.5.23")


def test_a_server_that_says_nothing_is_unknown():
    ask, asked = _answers()
    told = identify(ANONYMOUS_MODELS, "nginx", ask)
    assert told.family is None and told.evidence is None
    assert asked == ["/version", "/info", "/get_server_info"]
