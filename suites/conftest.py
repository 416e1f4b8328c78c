"""How the suite is dealt to xdist workers, and the exchanges that several checks judge:
sent once per run (across xdist workers too), judged many times."""

from __future__ import annotations

from typing import Any

import pytest
from cases import chat, completion
from xdist.scheduler import LoadGroupScheduling

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


# Modules whose tests share a session fixture too costly to build in more than one worker:
# the reference model (torch, transformers and the weights: in three workers at once, beside
# the server on two cores, each load took most of its test's 30 s, and the three ended the
# run 20 s after every other test).
ONE_WORKER_MODULES = frozenset({"test_oracle.py"})


class ReferenceModelOnOneWorker(LoadGroupScheduling):
    """xdist's loadgroup, with each module of ``ONE_WORKER_MODULES`` one unit of work."""

    def _split_scope(self, nodeid: str) -> str:
        module = nodeid.split("::", 1)[0]
        if module.rsplit("/", 1)[-1] in ONE_WORKER_MODULES:
            return module
        return super()._split_scope(nodeid)


@pytest.hookimpl(optionalhook=True)  # xdist's hook: absent under -p no:xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``--dist loadgroup``, the tests of ``ONE_WORKER_MODULES`` are one unit of work,
    dealt first (xdist deals the units with the most tests first), so one worker loads the
    reference model once while the others start the property tests.

    Marking them ``xdist_group`` does not do it with pytest 9.2: xdist 3.8 groups by a suffix
    it writes into ``item._nodeid``, which pytest 9.2 no longer reads (pytest-xdist#1386;
    measured here: the three tests ran on three workers). The controller collects nothing,
    so the unit is told from the node id alone.
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    return ReferenceModelOnOneWorker(config, log)


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
