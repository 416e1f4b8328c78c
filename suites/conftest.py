"""Exchanges that several checks judge: sent once per run (across xdist workers too),
judged many times."""

from __future__ import annotations

from typing import Any

import pytest
from cases import chat, completion

from logprobe.client import Exchange
from logprobe.shared import SharedExchanges


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest first: the property tests (sequential batches of generated requests) lead.

    With ``--dist loadgroup`` each test is its own unit, dealt to the workers in this
    order, so the long tests start at once on different workers and the short ones fill
    in around them (longest-processing-time-first). In file order they met at the end of
    one worker's queue and ran one after the other while the others sat idle.
    """
    items.sort(key=lambda item: not getattr(getattr(item, "obj", None), "is_hypothesis_test",
                                            False))


def _unless_skipped(request: pytest.FixtureRequest, name: str) -> Any:
    """The fixture ``name``, or None where it would skip the test."""
    try:
        return request.getfixturevalue(name)
    except pytest.skip.Exception:
        return None


@pytest.fixture(scope="session")
def optional_tokenizer(request: pytest.FixtureRequest) -> Any:
    """A tokenizer to build token-id prompts with (the served model's, else the server's
    /tokenize), or None (checks fall back to text)."""
    return _unless_skipped(request, "prompt_tokenizer")


@pytest.fixture(scope="session")
def independent_tokenizer(request: pytest.FixtureRequest) -> Any:
    """The served model's own tokenizer when one is known, else None: for what needs the
    vocabulary (its size, every token's spelling), which the server cannot witness."""
    return _unless_skipped(request, "tokenizer")


@pytest.fixture(scope="session")
def completion_top5(shared_api: SharedExchanges, model: str) -> Exchange:
    return shared_api.completions(completion(model, logprobs=5))


@pytest.fixture(scope="session")
def chat_top5(shared_api: SharedExchanges, model: str) -> Exchange:
    return shared_api.chat(chat(model, logprobs=True, top_logprobs=5))


@pytest.fixture(scope="session")
def chat_no_top(shared_api: SharedExchanges, model: str) -> Exchange:
    return shared_api.chat(chat(model, logprobs=True))


@pytest.fixture(scope="session")
def echo_top2(shared_api: SharedExchanges, model: str) -> Exchange:
    return shared_api.completions(completion(model, "The capital of France is Paris", echo=True,
                                             max_tokens=2, logprobs=2))
