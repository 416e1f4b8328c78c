"""ORACLE: the server's logprobs against the served model's own, computed locally.

On by default when the suite boots the embedded model; ``--reference-model ID_OR_DIR``
for a server of your own whose model you have, ``--reference-model none`` to turn it off.
"""

from __future__ import annotations

import pytest
from cases import first_logprobs

from logprobe.forcing import echo_scoring
from logprobe.invariants import oracle, shape
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
