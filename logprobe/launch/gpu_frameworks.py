"""Launchers for the GPU serving frameworks people compare with vLLM: SGLang, LMDeploy, TGI.

None of them installs on a machine without a GPU, so these were written from each
project's own documentation and code and are tested by their command lines only;
the LMDeploy flags were run (LMDeploy 0.18.0 on an H200, see docs/baselines/), the
SGLang and TGI ones not yet. Each takes the flags that make logprobs and echo work
as the project documents them, a fixed seed where it has one, and the served model
name the other launchers use, so that expectation files and reports line up.

* SGLang, ``python -m sglang.launch_server`` (docs: "Server Arguments";
  ``--model-path``, ``--host``, ``--port``, ``--random-seed``, ``--served-model-name``).
  Its logprobs are taken after temperature scaling unless the server runs with
  ``SGLANG_RETURN_ORIGINAL_LOGPROB=1`` (python/sglang/srt/layers/sampler.py); it runs as
  shipped, and SMP-003 reports which mode it is in. Ready: ``GET /health``.
* LMDeploy, ``lmdeploy serve api_server MODEL`` (docs: "OpenAI Compatible Server";
  ``--server-name``, ``--server-port``, ``--model-name``). ``--backend pytorch``: the
  engine whose logprobs were measured. ``--logprobs-mode raw_logprobs``: as shipped it
  refuses every logprobs request (400 "logprobs(N) requested but not enabled
  logprobs_mode in engine configuration", measured with 0.18.0). Ready: ``GET /v1/models``.
* TGI, ``text-generation-launcher`` (docs: "Text-generation-launcher arguments";
  ``--model-id``, ``--hostname``, ``--port``). ``--max-top-n-tokens 20``: chat
  ``top_logprobs`` becomes TGI's ``top_n_tokens``, capped at 5 by default. The key goes in
  ``API_KEY`` (its clap arguments read the environment). Ready: ``GET /health``.

SGLang's and LMDeploy's API keys exist only as command-line flags (``--api-key``,
``--api-keys``): they are passed there, and redacted from every message the suite
prints about the command.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from logprobe.launch.model import EMBEDDED_MODEL_NAME
from logprobe.launch.process import ServerProcess
from logprobe.launch.programs import server_command


@dataclass
class GpuServerConfig:
    """What every GPU framework's command line is made from."""

    model: str
    port: int
    host: str = "127.0.0.1"
    served_model_name: str = EMBEDDED_MODEL_NAME
    seed: int = 0
    api_key: str | None = None
    extra_args: list[str] = field(default_factory=list)


def sglang_argv(config: GpuServerConfig) -> list[str]:
    argv = [*server_command(module="sglang.launch_server", script=None,
                            install="pip install 'sglang[all]'"),
            "--model-path", config.model, "--host", config.host, "--port", str(config.port),
            "--random-seed", str(config.seed), "--served-model-name", config.served_model_name]
    if config.api_key:
        argv += ["--api-key", config.api_key]
    return argv + config.extra_args


def lmdeploy_argv(config: GpuServerConfig) -> list[str]:
    argv = [*server_command(module=None, script="lmdeploy", install="pip install lmdeploy"),
            "serve", "api_server", config.model, "--backend", "pytorch",
            "--logprobs-mode", "raw_logprobs", "--server-name", config.host,
            "--server-port", str(config.port), "--model-name", config.served_model_name]
    if config.api_key:
        argv += ["--api-keys", config.api_key]
    return argv + config.extra_args


def tgi_argv(config: GpuServerConfig) -> list[str]:
    return [*server_command(module=None, script="text-generation-launcher",
                            install="see huggingface/text-generation-inference: install the "
                            "launcher, or run its container and pass --endpoint"),
            "--model-id", config.model, "--hostname", config.host, "--port", str(config.port),
            "--max-top-n-tokens", "20", *config.extra_args]


@dataclass(frozen=True)
class Framework:
    name: str  # the --serve name, and the expectation file's
    argv: Callable[[GpuServerConfig], list[str]]
    ready_path: str


FRAMEWORKS = {
    "sglang": Framework("SGLang", sglang_argv, "/health"),
    "lmdeploy": Framework("LMDeploy", lmdeploy_argv, "/v1/models"),
    "tgi": Framework("TGI", tgi_argv, "/health"),
}


def gpu_server(backend: str, config: GpuServerConfig, log_dir: Path,
               reach: str = "127.0.0.1") -> ServerProcess:
    """An unstarted server of ``backend`` (a key of ``FRAMEWORKS``). Raises
    ``ServerNotInstalled`` when its program is not here."""
    framework = FRAMEWORKS[backend]
    argv = framework.argv(config)
    env = dict(os.environ)
    if backend == "tgi" and config.api_key:
        env["API_KEY"] = config.api_key
    if Path(config.model).is_dir():
        env.setdefault("HF_HUB_OFFLINE", "1")  # a local folder needs no hub
    return ServerProcess(argv, health_url=f"http://{reach}:{config.port}{framework.ready_path}",
                         log_path=log_dir / f"{backend}-{config.port}.log", env=env,
                         name=framework.name, startup_timeout=1200.0,
                         redact=[config.api_key] if config.api_key else [])
