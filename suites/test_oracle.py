"""ORACLE: the server's logprobs against the served model's own, computed locally.

On by default when the suite boots the embedded model; ``--reference-model ID_OR_DIR``
for a server of your own whose model you have, ``--reference-model none`` to turn it off.
"""

from __future__ import annotations

import pytest
from cases import completion, first_logprobs, responses_request

from logprobe.forcing import echo_scoring
from logprobe.invariants import oracle, prompt, responses, shape
from logprobe.invariants.core import nothing_to_judge

TEXTS = [
    "The capital of France is Paris, and the capital of Germany is Berlin.",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))",
    "Question: What is 7 times 8? Answer: 56. Question: What is 9 times 9? Answer:",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
]


@pytest.fixture(scope="session")
def reference(backend):
    if backend.reference_model is None:
        pytest.skip("no local copy of the served model: pass --reference-model ID_OR_DIR")
    from logprobe.oracle_model import load_oracle_model

    return load_oracle_model(backend.reference_model)


def test_prompt_logprobs_match_the_reference_model(api, model, reference, judge):
    """Token-id prompts, so both sides score the same tokens. A server that refuses them
    (llama-cpp-python answers a 500) is judged from text prompts instead, on the prompts
    it tokenized exactly as the reference did; its refusal is ECHO/ERR's to judge."""
    prompts = [reference.encode(text) for text in TEXTS]
    exchanges = api.post_many([("/completions", echo_scoring(model, ids)) for ids in prompts])
    if any(e.status != 200 for e in exchanges):
        status = next(e.status for e in exchanges if e.status != 200)
        judge.measure("oracle_prompts", f"text (token-id prompts answered HTTP {status})")
        exchanges = api.post_many([("/completions", echo_scoring(model, text)) for text in TEXTS])
    server: list = []
    truth: list = []
    for ids, exchange in zip(prompts, exchanges, strict=True):
        body = judge.response(exchange, shape.check_completions_shape,
                              feature="echo of a prompt")
        logprobs = first_logprobs(body)
        if isinstance(exchange.request_json["prompt"], str) and \
                (logprobs.get("tokens") or [])[:len(ids)] != reference.token_strings(ids):
            continue  # tokenized otherwise than by the reference: no position lines up
        server += logprobs["token_logprobs"][:len(ids)]
        truth += reference.prompt_logprobs(ids)
    if not truth:
        judge.record(exchanges, [], nothing_to_judge(
            "no text prompt was tokenized as the reference model tokenizes it",
            oracle.ORACLE_001, oracle.ORACLE_002))
        return
    judge.measure("oracle", {"reference": truth, "server": server})
    judge.check(exchanges, oracle.check_against_reference, server, truth)


def test_prompt_logprobs_extension_matches_the_reference_model(api, model, reference, judge):
    """The same token-id prompts scored through prompt_logprobs (vLLM's extension, where
    the server offers it), each position's own token against the reference (ORACLE-001).
    A server without the extension has nothing to judge here (PROMPT's tests say so)."""
    prompts = [reference.encode(text) for text in TEXTS]
    exchanges = api.post_many([("/completions", completion(model, ids, max_tokens=1,
                                                           prompt_logprobs=0))
                               for ids in prompts])
    server: list = []
    truth: list = []
    for ids, exchange in zip(prompts, exchanges, strict=True):
        if judge.refused(exchange):
            break
        body = judge.applicable(exchange, feature="prompt_logprobs")
        rows = prompt.prompt_logprobs_of(body["choices"][0], body) if body else None
        if not isinstance(rows, list) or len(rows) != len(ids):
            break  # ignored, or not one row per prompt token: PROMPT-001 judges that
        server += prompt.own_values(rows, ids, None)[0]
        truth += reference.prompt_logprobs(ids)
    if len(truth) < sum(len(ids) for ids in prompts):
        judge.record(exchanges, [], nothing_to_judge(
            "the server did not answer prompt_logprobs for every prompt", oracle.ORACLE_001,
            oracle.ORACLE_002))
        return
    judge.measure("oracle_prompt_logprobs", {"reference": truth, "server": server})
    judge.check(exchanges, oracle.check_against_reference, server, truth)


INPUTS = ["Write one sentence about the sea.", "Name three colours of the rainbow.",
          "Describe a cat in one sentence."]


def test_responses_logprobs_match_the_reference_model(api, model, reference, judge):
    """The Responses API's generated tokens, scored again by the reference model after the
    same input in the model's chat template (RESP-007). Judged only where the two sides
    provably saw the same tokens: the server's input_tokens equal the template's, and the
    output text retokenizes into the server's own tokens."""
    template = [reference.chat_prompt(text) for text in INPUTS]
    if None in template:
        pytest.skip("the reference model has no chat template to build the input with")
    exchanges = api.post_many([("/responses", responses_request(model, 0, text=text))
                               for text in INPUTS])
    server: list = []
    truth: list = []
    for ids, exchange in zip(template, exchanges, strict=True):
        if exchange.status in (404, 405, 501) or judge.refused(exchange):
            continue  # no Responses API, or not its logprobs: RESP's own tests say so
        body = judge.applicable(exchange, feature="the Responses API's logprobs")
        entries = responses.plain_entries(body)
        out = reference.encode(responses.output_text(body))
        used = (body.get("usage") or {}).get("input_tokens") if isinstance(body, dict) else None
        if not entries or used != len(ids) or \
                reference.token_strings(out) != [e.get("token") for e in entries]:
            continue  # templated or tokenized otherwise: no position lines up
        server += [e.get("logprob") for e in entries]
        truth += reference.prompt_logprobs([*ids, *out])[len(ids):]
    if not truth:
        judge.record(exchanges, [], nothing_to_judge(
            "no Responses answer lined up with the reference model's tokens (or the server "
            "has no Responses logprobs)", responses.RESP_007))
        return
    judge.measure("oracle_responses", {"reference": truth, "server": server})
    judge.check(exchanges, responses.check_against_reference, server, truth)
