"""How far a reduced-precision forward pass of the embedded model moves its logprobs from
the float32 reference: what the reference oracle (ORACLE-001) must accept.

Runs SmolLM2-135M-Instruct (the embedded model) with transformers on this CPU in float32
and again in bfloat16 and float16, and through llama.cpp on the Q4_1 GGUF it is
converted from (when llama-cpp-python is installed), over the same token ids, and
prints the
per-token |difference| of every next-token logprob (max, p99, median) and of the top-5
alternatives. GPU kernels differ from CPU ones; the figure that matters is the size of
the rounding, which the weights' and activations' dtype sets. Output: JSON on stdout,
stored under bench/results/.

    python -m bench.reference_numerics > bench/results/reference-numerics-DATE.json
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time

TEXTS = [
    "The capital of France is Paris, and the capital of Germany is Berlin.",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))",
    "Question: What is 7 times 8? Answer: 56. Question: What is 9 times 9? Answer:",
    "Once upon a time, in a small village by the sea, there lived an old fisherman who",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
]


def main() -> int:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from logprobe.launch.model import embedded_model_dir

    folder = embedded_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = [tokenizer(t, return_tensors="pt").input_ids for t in TEXTS]

    def logprobs(dtype: torch.dtype) -> list[torch.Tensor]:
        model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=dtype).eval()
        with torch.no_grad():
            return [torch.log_softmax(model(x).logits[0].float(), dim=-1) for x in ids]

    def llama_cpp_logprobs() -> list[torch.Tensor] | None:
        """The same token ids through llama.cpp on the GGUF the embedded model comes from
        (Q4_1 weights, activations quantised for the matrix products): a quantised server."""
        try:
            from llama_cpp import Llama
        except ImportError:
            return None
        from logprobe.launch.model import locate_gguf

        llm = Llama(model_path=str(locate_gguf()), logits_all=True, n_ctx=512, verbose=False)
        found = []
        for x in ids:
            llm.reset()
            llm.eval(x[0].tolist())
            scores = torch.tensor(llm.scores[: x.shape[1]], dtype=torch.float32)
            found.append(torch.log_softmax(scores, dim=-1))
        return found

    reference = logprobs(torch.float32)
    out = {"model": str(folder), "machine": platform.platform(), "torch": torch.__version__,
           "date": time.strftime("%Y-%m-%d"), "texts": len(TEXTS),
           "tokens": sum(x.shape[1] - 1 for x in ids), "against": "float32", "dtypes": {}}
    def defect(change) -> list[torch.Tensor]:
        return [change(r) for r in reference]

    def shifted(r: torch.Tensor) -> torch.Tensor:  # each position scored with the next's
        return torch.cat([r[1:], r[-1:]])

    candidates = {"bfloat16": lambda: logprobs(torch.bfloat16),
                  "float16": lambda: logprobs(torch.float16),
                  "llama.cpp Q4_1": llama_cpp_logprobs,
                  # what the oracle must fail: logprobs after temperature 0.7, and values
                  # taken one position off (a different model is not available offline)
                  "defect: temperature 0.7": lambda: defect(
                      lambda r: torch.log_softmax(r / 0.7, dim=-1)),
                  "defect: one position off": lambda: defect(shifted)}
    for name, compute in candidates.items():
        other = compute()
        if other is None:
            continue
        chosen, top = [], []
        for x, ref, got in zip(ids, reference, other, strict=True):
            targets = x[0, 1:]
            rows = torch.arange(len(targets))
            chosen += (ref[rows, targets] - got[rows, targets]).abs().tolist()
            best = ref[:-1].topk(5, dim=-1).indices
            top += (ref[:-1].gather(1, best) - got[:-1].gather(1, best)).abs().flatten().tolist()
        out["dtypes"][name] = {
            kind: {"max": max(v), "p99": sorted(v)[int(0.99 * (len(v) - 1))],
                   "median": statistics.median(v), "n": len(v)}
            for kind, v in (("chosen", chosen), ("top5", top))}
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
