"""Benchmark: the server's generation rate against the number of requests in flight.

    python bench/in_flight.py --endpoint http://127.0.0.1:8000/v1 [--levels 1,2,4,8,16]

Why the core suite's ideal/measured ratio is bounded by its concurrency: the
ideal divides by the saturated rate, and a server batches concurrent requests.
For each level it sends 4 x level requests (at least 8) of 16 generated tokens
with 5 alternatives, that many at a time, and prints tokens/s and requests/s.
One run, one machine; nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from logprobe.endpoint import preflight


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--model", default=None)
    parser.add_argument("--levels", default="1,2,4,8,16")
    args = parser.parse_args()
    identity = preflight(args.endpoint, None, args.model)
    prompts = [f"Question {i}: Describe the history of the printing press in detail."
               for i in range(64)]
    with httpx.Client(base_url=identity.base_url, timeout=300) as http:
        def send(prompt: str) -> int:
            response = http.post("/completions", json={
                "model": identity.model, "prompt": prompt, "max_tokens": 16, "temperature": 0,
                "logprobs": 5, "ignore_eos": True})
            response.raise_for_status()
            return int(response.json()["usage"]["completion_tokens"])

        send(prompts[0])  # the first request after a boot is slower
        print(f"{'in flight':>9} {'requests':>8} {'tokens/s':>9} {'requests/s':>10}")
        for level in (int(x) for x in args.levels.split(",")):
            count = min(max(8, 4 * level), len(prompts))
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=level) as pool:
                tokens = sum(pool.map(send, prompts[:count]))
            elapsed = time.perf_counter() - started
            print(f"{level:>9} {count:>8} {tokens / elapsed:>9.1f} {count / elapsed:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
