"""The embedded model's conversion holds what transformers' own GGUF load holds.

The conversion (``logprobe.launch.model._convert``) maps names and undoes llama.cpp's
q/k permutation itself, without building a model; a mistake there would give vLLM a model
that runs and scores wrongly. Here its tensors are compared with those of transformers'
own load of the same GGUF, cast the same way, and its config with the one transformers
reads. About 30 s: both read and dequantise the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gguf")


def test_the_converted_folder_holds_transformers_own_load(tmp_path: Path) -> None:
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from logprobe.launch.model import _convert, locate_gguf

    gguf = locate_gguf()
    _convert(gguf, tmp_path / "model")
    saved = load_file(tmp_path / "model" / "model.safetensors")
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                  dtype=torch.float32)
    expected = {k: v.to(torch.bfloat16) for k, v in loaded.state_dict().items()}
    if loaded.config.tie_word_embeddings:
        expected.pop("lm_head.weight", None)  # one tensor, saved once
    assert set(saved) == set(expected)
    differ = [k for k in saved if saved[k].dtype != torch.bfloat16
              or not torch.equal(saved[k], expected[k])]
    assert not differ, differ[:5]
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["dtype"] == "bfloat16"
    assert "quantization_config" not in config
    assert config["num_hidden_layers"] == loaded.config.num_hidden_layers
    assert (tmp_path / "model" / "tokenizer.json").is_file()
    assert (tmp_path / "model" / "generation_config.json").is_file()
