"""The servers logprobe can boot, all behind one interface: ``--serve NAME``.

Each launcher turns a :class:`LaunchRequest` into an unstarted
:class:`ServerProcess` plus the base URL and model id to test. None installs
anything: a backend's Python dependency is an extra of the package, and a
missing one is a one-line :class:`LauncherUnavailable` naming it.

* ``vllm``: vLLM's OpenAI server (see :mod:`logprobe.launch.vllm`).
* ``llama-cpp``: llama-cpp-python's server on the GGUF itself, ``--logits_all``
  so echo can return prompt logprobs.
* ``llama-server``: llama.cpp's own server (see :mod:`logprobe.launch.llama_server`).
* ``sglang``, ``lmdeploy``, ``tgi``: GPU frameworks, written from their docs (see
  :mod:`logprobe.launch.gpu_frameworks`).
* ``transformers``: ``transformers serve`` with the HF folder preloaded.
* ``command``: any command line, with ``{port}`` and ``{model}`` placeholders and
  a readiness URL: SGLang, LMDeploy, TGI, Ollama... on a user's own machine.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from logprobe.launch.model import (
    EMBEDDED_MODEL_NAME,
    locate_gguf,
    prepare_embedded_model,
)
from logprobe.launch.process import ServerProcess, free_port
from logprobe.launch.programs import LauncherUnavailable, ServerNotInstalled, module_available

HOST = "127.0.0.1"
DEFAULT_READY_URL = "http://127.0.0.1:{port}/v1/models"


@dataclass
class LaunchRequest:
    backend: str
    log_dir: Path
    model: str | None = None  # None: the embedded SmolLM2 in the backend's format
    api_key: str | None = None
    command: str | None = None  # the ``command`` backend's command line
    ready_url: str | None = None  # the ``command`` backend's readiness URL
    port: int = 0  # 0: a free port
    host: str = HOST  # the address to bind (0.0.0.0 to serve other machines)
    extra_args: list[str] = field(default_factory=list)  # --serve-args, {model} filled in

    def chosen_port(self) -> int:
        return self.port or free_port()

    @property
    def reach(self) -> str:
        """The address this machine reaches the server at."""
        return "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host


@dataclass
class Launch:
    process: ServerProcess
    base_url: str
    model: str | None  # the id requests must name; None: the first of GET /v1/models
    tokenizer: str | None  # where the served model's tokenizer is, when known
    version: str | None = None  # the installed server package's version, if it does not say


def _package_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _require(module: str, extra: str, backend: str) -> None:
    if not module_available(module):
        raise ServerNotInstalled(
            f"--serve {backend} needs the {extra!r} extra: pip install 'logprobe[{extra}]'")


def _vllm(request: LaunchRequest) -> Launch:
    """vLLM: its CPU build through this interpreter, or ``vllm serve`` on a GPU (found as
    :mod:`logprobe.launch.programs` says); not installed is ``ServerNotInstalled``."""
    from logprobe.launch.vllm import VllmConfig, vllm_server

    process, resolved = vllm_server(VllmConfig(model=request.model, api_key=request.api_key,
                                               port=request.port, host=request.host,
                                               extra_args=request.extra_args),
                                    request.log_dir)
    return Launch(process, resolved.base_url, resolved.served_model_name or str(resolved.model),
                  str(resolved.model))


def _llama_cpp(request: LaunchRequest) -> Launch:
    """llama-cpp-python's server. ``--logits_all true``: without it echo has no logprobs."""
    _require("llama_cpp", "llama-cpp", "llama-cpp")
    gguf = request.model or str(locate_gguf())
    port = request.chosen_port()
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", gguf, "--model_alias",
            EMBEDDED_MODEL_NAME, "--host", request.host, "--port", str(port), "--logits_all", "true",
            "--n_ctx", "2048", "--seed", "0", *request.extra_args]
    env = dict(os.environ)
    if request.api_key:
        env["API_KEY"] = request.api_key  # its settings read the environment: never on argv
    process = ServerProcess(argv, health_url=f"http://{request.reach}:{port}/v1/models",
                            log_path=request.log_dir / f"llama-cpp-{port}.log", env=env,
                            name="llama-cpp-python")
    return Launch(process, f"http://{request.reach}:{port}/v1", EMBEDDED_MODEL_NAME,
                  _embedded_tokenizer(),
                  _package_version("llama_cpp_python"))


def _transformers(request: LaunchRequest) -> Launch:
    """``transformers serve`` with the model preloaded (it otherwise loads on first use)."""
    _require("fastapi", "transformers", "transformers")
    executable = shutil.which("transformers", path=str(Path(sys.executable).parent)) \
        or shutil.which("transformers")
    if executable is None:
        raise LauncherUnavailable("--serve transformers needs the `transformers` command: "
                                  "pip install 'logprobe[transformers]'")
    model = _hf_model(request)
    port = request.chosen_port()
    argv = [executable, "serve", model, "--host", request.host, "--port", str(port), "--device", "cpu",
            "--dtype", "float32", "--default-seed", "0", *request.extra_args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"} if Path(model).is_dir() else dict(os.environ)
    process = ServerProcess(argv, health_url=f"http://{request.reach}:{port}/health",
                            log_path=request.log_dir / f"transformers-{port}.log", env=env,
                            name="transformers serve")
    return Launch(process, f"http://{request.reach}:{port}/v1", model, model,
                  _package_version("transformers"))


def _llama_server(request: LaunchRequest) -> Launch:
    """llama.cpp's ``llama-server`` on the embedded model's F32 GGUF (or ``--serve-model``)."""
    from logprobe.launch import llama_server as ls

    ls.program()  # not installed: say so before preparing a model
    gguf = request.model or str(ls.embedded_f32_gguf())
    config = ls.LlamaServerConfig(gguf=gguf, port=request.chosen_port(), host=request.host,
                                  api_key=request.api_key,
                                  extra_args=_filled(request.extra_args, gguf))
    process = ls.llama_server(config, request.log_dir, request.reach)
    return Launch(process, f"http://{request.reach}:{config.port}/v1", config.alias,
                  _embedded_tokenizer() if request.model is None else None, ls.package_version())


def _gpu_framework(request: LaunchRequest) -> Launch:
    """SGLang, LMDeploy or TGI on the HF folder (or ``--serve-model``): written from their
    docs, for GPU machines."""
    from logprobe.launch import gpu_frameworks as gpu

    probe = gpu.GpuServerConfig(model="", port=0)
    gpu.FRAMEWORKS[request.backend].argv(probe)  # not installed: say so before the model
    model = _hf_model(request)
    config = gpu.GpuServerConfig(model=model, port=request.chosen_port(), host=request.host,
                                 api_key=request.api_key,
                                 extra_args=_filled(request.extra_args, model))
    process = gpu.gpu_server(request.backend, config, request.log_dir, request.reach)
    distribution = {"sglang": "sglang", "lmdeploy": "lmdeploy"}.get(request.backend)
    return Launch(process, f"http://{request.reach}:{config.port}/v1", config.served_model_name,
                  model, _package_version(distribution) if distribution else None)


def _filled(args: list[str], model: str) -> list[str]:
    """``--serve-args`` with ``{model}`` standing for the served model (a draft model that is
    the model itself, for speculative decoding)."""
    return [arg.replace("{model}", model) for arg in args]


def _command(request: LaunchRequest) -> Launch:
    """Any server: the command line gets ``{port}`` and ``{model}`` filled in."""
    if not request.command:
        raise LauncherUnavailable(
            "--serve command needs --serve-command 'CMD ... {port} ... {model}' "
            "(and --serve-ready-url if GET /v1/models is not how it says it is ready)")
    model = _hf_model(request)
    port = request.chosen_port()
    argv = [part.format(port=port, model=model) for part in shlex.split(request.command)]
    ready = (request.ready_url or DEFAULT_READY_URL).format(port=port, model=model)
    process = ServerProcess(argv, health_url=ready, log_path=request.log_dir / f"command-{port}.log",
                            name=Path(argv[0]).name)
    return Launch(process, f"http://{request.reach}:{port}/v1", None, model)


def _hf_model(request: LaunchRequest) -> str:
    """The model as a hub id or folder: the one asked for, or the embedded one converted."""
    return request.model or str(prepare_embedded_model().path)


def _embedded_tokenizer() -> str | None:
    """The embedded model's HF folder (its tokenizer, and the oracle's reference model),
    converted now if it never was; None where it cannot be (no 'embedded' extra)."""
    from logprobe.launch.model import ModelPreparationError

    try:
        return str(prepare_embedded_model().path)
    except ModelPreparationError:
        return None


LAUNCHERS: dict[str, Callable[[LaunchRequest], Launch]] = {
    "vllm": _vllm,
    "llama-cpp": _llama_cpp,
    "transformers": _transformers,
    "llama-server": _llama_server,
    "sglang": _gpu_framework,
    "lmdeploy": _gpu_framework,
    "tgi": _gpu_framework,
    "command": _command,
}


def launch(request: LaunchRequest) -> Launch:
    """An unstarted server for ``request.backend``; raises ``LauncherUnavailable``."""
    launcher = LAUNCHERS.get(request.backend)
    if launcher is None:
        raise LauncherUnavailable(
            f"--serve {request.backend}: unknown backend (known: {', '.join(LAUNCHERS)})")
    return launcher(request)
