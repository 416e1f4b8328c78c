"""The schemas are valid 2020-12 schemas and tell recorded good responses from bad ones."""

import pytest
from jsonschema import Draft202012Validator
from recorded import LLAMA_CPP, TRANSFORMERS, VLLM, exchange

from logprobe import schemas


@pytest.mark.parametrize("name", schemas.all_schema_names())
def test_schema_is_valid_against_metaschema(name):
    Draft202012Validator.check_schema(schemas.load(name))


@pytest.mark.parametrize("name", ["completions_echo_lmeval_text", "completions_logprobs5",
                                  "completions_echo_lmeval_batch"])
def test_vllm_completions_match_both_profiles(name):
    _, _, response = exchange(VLLM, name)
    assert schemas.errors("completion.response", response) == []
    assert schemas.errors("completion.response.strict", response) == []


def test_vllm_chat_matches_lenient_profile_but_not_strict():
    _, _, response = exchange(VLLM, "chat_logprobs_top3")
    assert schemas.errors("chat.response", response) == []
    # vLLM omits logprobs.refusal, which the reference lists: a SHOULD, not a MUST.
    strict = schemas.errors("chat.response.strict", response)
    assert any("refusal" in e for e in strict), strict


def test_chat_shape_on_completions_is_rejected():
    _, _, response = exchange(VLLM, "completions_logprobs5")
    _, _, chat = exchange(VLLM, "chat_logprobs_top3")
    response["choices"][0]["logprobs"] = chat["choices"][0]["logprobs"]
    assert schemas.errors("completion.response", response)


def test_vllm_error_is_lenient_but_not_strict():
    _, status, response = exchange(VLLM, "chat_top_logprobs_25")
    assert status == 400
    assert schemas.errors("error", response) == []
    assert any("code" in e for e in schemas.errors("error.strict", response))


def test_transformers_error_is_not_an_openai_error_object():
    _, status, response = exchange(TRANSFORMERS, "completions_echo_lmeval_batch")
    assert status == 400
    assert schemas.errors("error", response)


def test_llama_cpp_null_chat_logprobs_passes_the_schema_alone():
    # logprobs: null is schema-valid; that it was asked for is the checks' business.
    _, _, response = exchange(LLAMA_CPP, "chat_logprobs_no_top")
    assert schemas.errors("chat.response", response) == []


def test_requests_validate():
    request, _, _ = exchange(VLLM, "completions_echo_lmeval_text")
    assert schemas.errors("completion.request", request) == []
    chat, _, _ = exchange(VLLM, "chat_top_without_logprobs")
    assert schemas.errors("chat.request", chat), "top_logprobs without logprobs must be invalid"
