"""Benchmark: do the suite's verdicts hold from run to run? On a correct server they must.

    python bench/stability.py [--endpoint URL --tokenizer DIR] [--runs 3] [--profile dev]

Runs the conformance suite ``--runs`` times against one server, each run with a fresh
random hypothesis seed (the ``dev`` profile draws 40 examples per property test and is
not derandomised, so each run sends other requests), and reports every test whose
verdict changed between runs, with each run's verdict and first reproducer. Without
``--endpoint`` it boots the embedded vLLM once for all runs. It writes
bench/results/stability-<date>.json. Nothing is asserted: the answer on a correct
server should be "none", and docs/performance.md records what it was.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GOOD = {"PASS", "XFAIL", "N/A", "SKIP"}  # a correct server's verdicts (N/A judged nothing)


def run_once(endpoint: str, tokenizer: str | None, profile: str, seed: int, workers: int,
             report_dir: Path, select: str | None) -> dict[str, Any]:
    command = [sys.executable, "-m", "pytest", str(ROOT / "suites"), "-q", "-p", "no:randomly",
               f"--endpoint={endpoint}", f"--report-dir={report_dir}",
               f"--hypothesis-profile={profile}", f"--hypothesis-seed={seed}",
               "-n", str(workers), "--dist", "loadgroup"]
    if tokenizer:
        command += [f"--tokenizer={tokenizer}", f"--reference-model={tokenizer}"]
    if select:
        command += ["-k", select]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    report = json.loads((report_dir / "run.json").read_text())
    return {"seed": seed, "exit": done.returncode, "seconds": round(time.monotonic() - started, 1),
            "summary": report.get("summary"),
            "tests": {t["nodeid"]: {"verdict": t["verdict"], "reproducer": _reproducer(t)}
                      for t in report["tests"]}}


def _reproducer(row: dict[str, Any]) -> str | None:
    """The failing request's curl (the first the failure message names), else the row's
    first request."""
    for line in (row.get("message") or "").splitlines():
        if line.startswith("reproduce: "):
            return line.removeprefix("reproduce: ")
    return (row.get("reproducers") or [None])[0]


def flips(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every test whose verdict differs between runs (a test missing from a run counts)."""
    found = []
    for nodeid in sorted({n for r in runs for n in r["tests"]}):
        seen = [r["tests"].get(nodeid, {"verdict": "(not run)", "reproducer": None}) for r in runs]
        if len({s["verdict"] for s in seen}) > 1:
            found.append({"nodeid": nodeid, "runs": seen})
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default=None)
    parser.add_argument("--tokenizer", default=None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", default="dev")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("-k", dest="select", default=None, help="a pytest -k selection")
    args = parser.parse_args()
    process = None
    endpoint, tokenizer = args.endpoint, args.tokenizer
    if endpoint is None:
        from logprobe.launch.model import embedded_model_dir
        from logprobe.launch.vllm import VllmConfig, vllm_server

        process, resolved = vllm_server(VllmConfig(), Path(tempfile.mkdtemp(prefix="logprobe-")))
        process.start()
        endpoint, tokenizer = resolved.base_url, tokenizer or str(embedded_model_dir())
    try:
        runs = []
        for n in range(args.runs):
            seed = random.SystemRandom().randrange(2**32)
            runs.append(run_once(endpoint, tokenizer, args.profile, seed, args.workers,
                                 Path(tempfile.mkdtemp(prefix=f"logprobe-stability-{n}-")),
                                 args.select))
            print(f"run {n + 1}: seed {seed}, exit {runs[-1]['exit']}, {runs[-1]['seconds']} s, "
                  f"{runs[-1]['summary']}", flush=True)
    finally:
        if process is not None:
            process.stop()
    changed = flips(runs)
    failing = sorted(n for n in {n for r in runs for n in r["tests"]}
                     if n not in {f["nodeid"] for f in changed}
                     and runs[0]["tests"].get(n, {}).get("verdict") not in GOOD)
    print(f"{len(changed)} of {len({n for r in runs for n in r['tests']})} tests changed verdict "
          f"over {len(runs)} runs ({args.profile} profile, random seeds); {len(failing)} "
          "failed in every run")
    for nodeid in failing:
        print(f"  failed every run: {nodeid}: {runs[0]['tests'][nodeid]['reproducer'] or ''}"[:600])
    for flip in changed:
        print(f"  {flip['nodeid']}:")
        for n, seen in enumerate(flip["runs"], 1):
            print(f"    run {n}: {seen['verdict']}  {seen['reproducer'] or ''}"[:600])
    out = ROOT / "bench" / "results" / f"stability-{time.strftime('%Y-%m-%d')}.json"
    out.write_text(json.dumps({
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "endpoint_booted": process is not None, "profile": args.profile,
        "runs": [{k: v for k, v in r.items() if k != "tests"} for r in runs],
        "tests": len({n for r in runs for n in r["tests"]}), "flips": changed,
        "failed_every_run": failing}, indent=1))
    print(f"written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
