"""The servers logprobe can boot, all behind one interface: ``--serve NAME``.

Each launcher turns a :class:`LaunchRequest` into an unstarted
:class:`ServerProcess` plus the base URL and model id to test. None installs
anything: a backend's Python dependency is an extra of the package, and a
missing one is a one-line :class:`LauncherUnavailable` naming it.

* ``vllm``: vLLM's OpenAI server (see :mod:`logprobe.launch.vllm`).
* ``llama-cpp``: llama-cpp-python's server on the GGUF itself, ``--logits_all``
  so echo can return prompt logprobs.
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
from dataclasses import dataclass
from pathlib import Path

from logprobe.launch.model import (
    EMBEDDED_MODEL_NAME,
    embedded_model_dir,
    locate_gguf,
    prepare_embedded_model,
)
from logprobe.launch.process import ServerProcess, free_port

HOST = "127.0.0.1"
DEFAULT_READY_URL = "http://127.0.0.1:{port}/v1/models"


class LauncherUnavailable(RuntimeError):
    """The backend cannot be booted here; the message says what to install or pass."""


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
    if importlib.util.find_spec(module) is None:
        raise LauncherUnavailable(
            f"--serve {backend} needs the {extra!r} extra: pip install 'logprobe[{extra}]'")


def _vllm(request: LaunchRequest) -> Launch:
    _require("vllm", "embedded", "vllm")
    from logprobe.launch.vllm import VllmConfig, vllm_server

    process, resolved = vllm_server(VllmConfig(model=request.model, api_key=request.api_key,
                                               port=request.port, host=request.host),
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
            "--n_ctx", "2048", "--seed", "0"]
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
            "--dtype", "float32", "--default-seed", "0"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"} if Path(model).is_dir() else dict(os.environ)
    process = ServerProcess(argv, health_url=f"http://{request.reach}:{port}/health",
                            log_path=request.log_dir / f"transformers-{port}.log", env=env,
                            name="transformers serve")
    return Launch(process, f"http://{request.reach}:{port}/v1", model, model,
                  _package_version("transformers"))


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
    """The converted HF folder carries the GGUF's tokenizer, if it was ever prepared."""
    folder = embedded_model_dir()
    return str(folder) if (folder / "tokenizer.json").exists() else None


LAUNCHERS: dict[str, Callable[[LaunchRequest], Launch]] = {
    "vllm": _vllm,
    "llama-cpp": _llama_cpp,
    "transformers": _transformers,
    "command": _command,
}


def launch(request: LaunchRequest) -> Launch:
    """An unstarted server for ``request.backend``; raises ``LauncherUnavailable``."""
    launcher = LAUNCHERS.get(request.backend)
    if launcher is None:
        raise LauncherUnavailable(
            f"--serve {request.backend}: unknown backend (known: {', '.join(LAUNCHERS)})")
    return launcher(request)
