"""The fixtures a conformance test asks for: the client, the model and its tokenizers, a
judge, the reference mirror, the tolerance and the logprobs limit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from logprobe.backend import Backend
from logprobe.client import RecordingClient
from logprobe.endpoint import EXIT_ENDPOINT_UNUSABLE
from logprobe.judge import Judge, Judgement
from logprobe.liveness import DownBeforeTest, ServerDown
from logprobe.plugin.keys import (
    CLIENT_KEY,
    EXPECTATION_KEY,
    FAILURES_KEY,
    JUDGEMENT_KEY,
)
from logprobe.plugin.options import DEFAULT_LOGPROBS_LIMIT, options_of
from logprobe.plugin.session import expectations_for, share_dir_of, watch_of
from logprobe.shared import SharedExchanges
from logprobe.tolerance import Tolerance


def _client(base_url: str, api_key: str | None, config: pytest.Config,
            mirror: Any = None) -> RecordingClient:
    options = options_of(config)
    settings: dict[str, Any] = {"api_key": api_key, "timeout": options.request_timeout,
                                "max_connections": options.concurrency,
                                "retries": options.retries}
    if mirror is None:
        return RecordingClient(base_url, **settings)
    from logprobe.mirror import MirroredClient

    return MirroredClient(base_url, mirror, **settings)


@pytest.fixture(scope="session")
def api(backend: Backend, request: pytest.FixtureRequest) -> Iterator[RecordingClient]:
    """The client to the server under test; with --reference-endpoint its greedy exchanges
    carry the reference's answer too (``logprobe.mirror``)."""
    client = _client(backend.identity.base_url, options_of(request.config).api_key,
                     request.config, _mirror(backend, request.config))
    request.config.stash[CLIENT_KEY] = client
    yield client
    client.close()


def _mirror(backend: Backend, config: pytest.Config) -> Any:
    """With --reference-endpoint, what asks it the same requests (its client checked by a
    preflight first); else None."""
    options = options_of(config)
    if not options.reference_endpoint:
        return None
    from logprobe.endpoint import EndpointUnusable, preflight
    from logprobe.mirror import Mirror

    key = options.reference_api_key
    try:
        identity = preflight(options.reference_endpoint, key, None)
    except EndpointUnusable as exc:
        pytest.exit(f"logprobe: --reference-endpoint: {exc}", returncode=EXIT_ENDPOINT_UNUSABLE)
    return Mirror(_client(identity.base_url, key, config), identity.model,
                  backend.identity.model)


@pytest.fixture(scope="session")
def api_key(request: pytest.FixtureRequest) -> str | None:
    """The key the suite sends (``--api-key``, else $OPENAI_API_KEY), for a test that hands
    it to another client (lm-eval); never reported."""
    return options_of(request.config).api_key


@pytest.fixture(scope="session")
def shared_api(api: RecordingClient, request: pytest.FixtureRequest) -> SharedExchanges:
    """For exchanges several tests judge: one request per run, whichever worker asks first."""
    return SharedExchanges(api, share_dir_of(request.config))


@pytest.fixture(scope="session")
def model(backend: Backend) -> str:
    return backend.identity.model


@pytest.fixture(scope="session")
def tokenizer_source(backend: Backend) -> str | None:
    """Where the served model's tokenizer comes from: --tokenizer, or what we booted."""
    return backend.tokenizer


@pytest.fixture(scope="session")
def tokenizer(tokenizer_source: str | None) -> Any:
    """The served model's tokenizer; skips the test when none is known."""
    source = tokenizer_source
    if source is None:
        pytest.skip("needs the served model's tokenizer: pass --tokenizer (a server's "
                    "/tokenize cannot witness its own vocabulary)")
    from logprobe.tokenizer import load_tokenizer

    try:
        return load_tokenizer(source)
    except ImportError:
        pytest.skip("--tokenizer needs the tokenizers or transformers package")


@pytest.fixture(scope="session")
def prompt_tokenizer(backend: Backend, request: pytest.FixtureRequest) -> Any:
    """A tokenizer to build token-id prompts with: the served model's own (``tokenizer``),
    else the server's /tokenize (``logprobe.server_tokenizer``); skips when neither is
    there. Not for checks of the vocabulary: the server would be its own witness."""
    if backend.tokenizer is not None:
        return request.getfixturevalue("tokenizer")
    if backend.tokenize_url is None:
        pytest.skip("needs the served model's tokenizer: pass --tokenizer (the server has no "
                    "/tokenize to build token-id prompts with)")
    from logprobe.server_tokenizer import ServerTokenizer

    return ServerTokenizer(request.getfixturevalue("api"), backend.tokenize_url,
                           backend.identity.model)


@pytest.fixture
def judge(request: pytest.FixtureRequest, backend: Backend) -> Judge:
    try:
        return new_judge(request, backend)
    except ServerDown as down:
        raise DownBeforeTest(down) from None


@pytest.fixture
def make_judge(request: pytest.FixtureRequest, backend: Backend) -> Callable[[], Judge]:
    """A fresh judge per call, for a property test's examples (the last one made is the
    row). A server known to be down before hypothesis starts makes the test not reached at
    once, not hundreds of examples each waiting on refused connections; one that goes down
    later makes the call raise ServerDown."""
    try:
        watch_of(request.config, backend).stop_if_down()
    except ServerDown as down:
        raise DownBeforeTest(down) from None
    return lambda: new_judge(request, backend)


def new_judge(request: pytest.FixtureRequest, backend: Backend) -> Judge:
    """A judge whose judgement becomes the test's report row (the last one made wins: property
    tests make one per example), once the server is not known to be down."""
    watch = watch_of(request.config, backend)
    watch.stop_if_down()
    judgement = Judgement()
    request.node.stash[JUDGEMENT_KEY] = judgement
    return Judge(judgement, on_no_answer=watch.after_failure,
                 expectations=[e for e in expectations_for(request.config, backend)
                               if e.test is None],  # a test entry is settled by the outcome
                 reference_tolerance=options_of(request.config).reference_tolerance,
                 failures=request.node.stash.setdefault(FAILURES_KEY, []))


@pytest.fixture(scope="session")
def tolerance(request: pytest.FixtureRequest) -> Tolerance:
    """How far two logprobs of one token may differ (``--logprob-tolerance``)."""
    return options_of(request.config).tolerance


@pytest.fixture(scope="session")
def logprobs_limit(request: pytest.FixtureRequest, backend: Backend) -> int:
    """``--logprobs-limit``, else the limit the server stated in a refusal, else 20."""
    given = options_of(request.config).logprobs_limit
    if given is not None:
        return int(given)
    return backend.identity.logprobs_cap or DEFAULT_LOGPROBS_LIMIT


@pytest.fixture(autouse=True)
def _expected_failures(request: pytest.FixtureRequest) -> None:
    """A test an expectation names is expected to fail *as the entry says*, once the server's
    version is known (expectations may hold for some versions only). The outcome is settled
    in ``logprobe.plugin.verdicts``: the named verdict and invariant make an XFAIL, a pass
    an XPASS (the entry is stale), any other failure stays a failure."""
    if "backend" not in request.fixturenames:
        return  # not a conformance test
    for expectation in expectations_for(request.config, request.getfixturevalue("backend")):
        if expectation.test == request.node.nodeid:
            request.node.stash[EXPECTATION_KEY] = expectation
