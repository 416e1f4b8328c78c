"""ORACLE: the server's logprobs against the served model's own, computed locally.

On by default when the suite boots the embedded model; ``--reference-model ID_OR_DIR``
for a server of your own whose model you have, ``--reference-model none`` to turn it off.
"""

from __future__ import annotations

import pytest
from cases import completion, first_logprobs

from logprobe.invariants import oracle, shape

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
    from logprobe.reference import load_reference

    return load_reference(backend.reference_model)


def test_prompt_logprobs_match_the_reference_model(api, model, reference, judge):
    prompts = [reference.encode(text) for text in TEXTS]
    exchanges = api.post_many([("/completions", completion(model, ids, echo=True, max_tokens=1,
                                                           logprobs=1)) for ids in prompts])
    server: list = []
    truth: list = []
    for ids, exchange in zip(prompts, exchanges, strict=True):
        body = judge.response(exchange, shape.check_completions_shape,
                              feature="echo with token-id prompts")
        server += first_logprobs(body)["token_logprobs"][:len(ids)]
        truth += reference.prompt_logprobs(ids)
    judge.measure("oracle", {"reference": truth, "server": server})
    judge.check(exchanges, oracle.check_against_reference, server, truth)
