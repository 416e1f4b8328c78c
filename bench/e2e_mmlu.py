"""Benchmark: is the e2e MMLU run bounded by the server, and how fast is the suite's own scorer?

    python bench/e2e_mmlu.py --endpoint http://127.0.0.1:8000/v1 --tokenizer DIR [--per-subject 1]

In one run against one server it measures:
  1. the server's saturated prompt throughput (tokens/s): the same lm-eval-style
     echo requests sent 8 at a time;
  2. lm-eval's MMLU run (local-completions, num_concurrent=4): wall time and the
     prompt tokens it made the server process (summed from the recorded usage);
  3. ideal time = tokens / throughput, and ideal / measured;
  4. the suite's own scorer (one request per question) on the same questions:
     its time as a ratio of lm-eval's, and how many answers are identical.
Nothing is asserted; the figures are printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from logprobe import e2e, mmlu
from logprobe.client import RecordingClient
from logprobe.endpoint import preflight
from logprobe.invariants.lmeval import lmeval_request
from logprobe.proxy import proxy_process


def measure(base: str, model: str, tokenizer_dir: str, per_subject: int = 1) -> dict[str, Any]:
    """All the figures of this benchmark, measured against one server in one run."""
    from logprobe.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_dir)
    folder = Path(tempfile.mkdtemp(prefix="logprobe-bench-"))
    tasks = mmlu.write_tasks(mmlu.stratified(mmlu.load_questions(), per_subject), folder)

    # 1. saturated prompt throughput on lm-eval-shaped requests
    prompts = [tokenizer.encode(tasks.context(t, d) + " " + letter, add_special_tokens=False)
               for t in tasks.tasks for d in tasks.docs[t] for letter in "AB"][:96]
    with httpx.Client(timeout=300) as http:
        def send(ids: list[int]) -> int:
            r = http.post(base + "/completions", json=lmeval_request(model, ids))
            r.raise_for_status()
            return int(r.json()["usage"]["prompt_tokens"])

        send(prompts[0])
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=8) as pool:
            tokens = sum(pool.map(send, prompts))
        throughput = tokens / (time.perf_counter() - started)

    # 2. lm-eval through a recording proxy
    record = folder / "exchanges.jsonl"
    proxy, url = proxy_process(base, folder, record=record)
    with proxy:
        started = time.perf_counter()
        outcome = e2e.run_lmeval(url, model, tasks, tokenizer=tokenizer_dir, record=record)
        lmeval_seconds = time.perf_counter() - started
    if outcome.error:
        raise RuntimeError(f"lm-eval raised {outcome.error}")
    sent = sum(int(json.loads(x["body"])["usage"]["prompt_tokens"])
               for x in outcome.exchanges if x["path"].endswith("/completions"))

    # 4. the suite's own scorer on the same questions
    with RecordingClient(base) as client:
        started = time.perf_counter()
        own = e2e.score_independently(client, model, tasks, tokenizer)
        own_seconds = time.perf_counter() - started
    _, stats = e2e.compare(outcome, own)
    return {
        "questions": sum(len(d) for d in tasks.docs.values()),
        "prompt_throughput_tokens_per_s": round(throughput, 1),
        "lmeval_seconds": round(lmeval_seconds, 1),
        "lmeval_prompt_tokens": sent,
        "ideal_seconds": round(sent / throughput, 1),
        "ideal_over_measured": round(sent / throughput / lmeval_seconds, 2),
        "own_scorer_seconds": round(own_seconds, 1),
        "own_scorer_speedup": round(lmeval_seconds / own_seconds, 1),
        "identical_answers": f"{stats['agreed']}/{stats['compared']}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--model", default=None)
    parser.add_argument("--per-subject", type=int, default=1)
    args = parser.parse_args()
    identity = preflight(args.endpoint, None, args.model)
    base, model = identity.base_url, identity.model
    for key, value in measure(base, model, args.tokenizer, args.per_subject).items():
        print(f"{key:34} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
