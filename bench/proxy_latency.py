"""Benchmark: the fault proxy's added latency per request, as a ratio to the direct request.

    python bench/proxy_latency.py --endpoint http://127.0.0.1:8000/v1 [--requests 40]

Starts a transparent proxy in front of the endpoint and sends the same small
requests alternately direct and through the proxy (so drift in the server's
speed hits both alike), then prints the medians and their ratio. Measured in
one run on one machine; no threshold is asserted anywhere.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from logprobe.endpoint import preflight
from logprobe.proxy import proxy_process


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--model", default=None)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    identity = preflight(args.endpoint, None, args.model)
    base, model = identity.base_url, identity.model
    proxy, proxy_url = proxy_process(base, Path(tempfile.mkdtemp(prefix="logprobe-bench-")))
    payloads = {
        "completions logprobs=5": ("/completions", {"model": model, "prompt": "Once upon a time",
                                                     "max_tokens": 4, "logprobs": 5,
                                                     "temperature": 0}),
        "lm-eval echo request": ("/completions", {"model": model, "prompt": "The capital of France "
                                                  "is Paris", "max_tokens": 1, "logprobs": 1,
                                                  "echo": True, "temperature": 0}),
    }
    with proxy, httpx.Client(timeout=60) as client:
        routes = {"direct": base, "proxy": proxy_url}
        print(f"{'request':26} {'direct ms':>10} {'proxy ms':>10} {'ratio':>7}")
        for name, (path, payload) in payloads.items():
            times: dict[str, list[float]] = {"direct": [], "proxy": []}
            for route in ("direct", "proxy"):  # warm both paths
                client.post(routes[route] + path, json=payload).raise_for_status()
            for _ in range(args.requests):
                for route in ("direct", "proxy"):
                    started = time.perf_counter()
                    client.post(routes[route] + path, json=payload).raise_for_status()
                    times[route].append(time.perf_counter() - started)
            direct = statistics.median(times["direct"]) * 1000
            proxied = statistics.median(times["proxy"]) * 1000
            print(f"{name:26} {direct:10.1f} {proxied:10.1f} {proxied / direct:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
