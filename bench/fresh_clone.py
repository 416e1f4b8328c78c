"""Fresh clone to first verdict: ``python bench/fresh_clone.py``.

Clones this repository's HEAD into a temporary folder and runs the README's first command,
``./dev conformance``, there with empty caches of its own (uv's, pip's and logprobe's model
cache), as a new user's first try on a machine that has never installed it. Its setup is
timed apart (``./dev setup conformance``, what ``./dev conformance`` does first).
Prints the two wall times and the verdict line, and writes
``bench/results/fresh-clone-<date>.json`` (a second run that day replaces it). A
measurement, not a test: the machine is shared, so it records the load average beside
the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _timed(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> tuple[float, int]:
    """Run ``command``, each line of its output kept in ``log`` after the seconds since it
    started (what ``_phases`` reads)."""
    start = time.monotonic()
    with log.open("w") as out, subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, errors="replace") as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(f"{time.monotonic() - start:7.1f} {line}")
    return time.monotonic() - start, proc.returncode


# The progress lines of a booted run (logprobe.backend._boot), in the order they come.
_MARKS = {"start": "logprobe: booting ", "server_started": "logprobe: starting ",
          "server_ready": " ready at ", "tests_began": " workers [", "summary": "== logprobe =="}
# What the time up to each mark (and to the log's last line) was spent on.
_PHASES = ["pytest starting", "model preparation", "server boot", "preflight, workers starting",
           "tests, run-level checks, server stopped", "summary"]


def _phases(log: Path) -> dict[str, float]:
    """Where the conformance run's time went, from its timestamped log: pytest starting,
    the model's preparation (a first run converts it), the server's boot, the workers
    starting, the tests with the run-level checks and the server's stop, the summary."""
    seen: dict[str, float] = {}
    last = 0.0
    for line in log.read_text(errors="replace").splitlines():
        stamp, _, text = line.strip().partition(" ")
        try:
            last = float(stamp)
        except ValueError:
            continue
        for mark, words in _MARKS.items():
            if mark not in seen and words in text:
                seen[mark] = last
    seen["end"] = last
    phases = {"pytest starting": seen["start"]} if "start" in seen else {}
    for (_, a), (name, b) in pairwise(zip(_PHASES, [*_MARKS, "end"], strict=True)):
        if a in seen and b in seen:
            phases[name] = round(seen[b] - seen[a], 1)
    return phases


def _verdict(log: Path) -> str:
    """pytest's last line (which counts the passed and failed), without its timestamp."""
    lines = [line.strip().partition(" ")[2] for line in
             log.read_text(errors="replace").strip().splitlines()]
    return next((line for line in reversed(lines) if " passed" in line or " failed" in line),
                lines[-1] if lines else "")


def _breakdown(clone: Path) -> dict[str, float | None]:
    """What the conformance run's own report says of its time: the server's boot, and the
    tests from the first to the last (the rest of the conformance wall time is pytest
    starting, the model's conversion and the reference model's loading)."""
    path = clone / "reports" / "embedded" / "run.json"
    if not path.exists():
        return {}
    run = json.loads(path.read_text())
    durations = [t.get("duration_s") or 0.0 for t in run.get("tests", [])]
    return {"server_ready_seconds": run.get("backend", {}).get("ready_seconds"),
            "tests_seconds_summed": round(sum(durations), 1), "tests": len(durations)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the clone and its caches")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="logprobe-fresh-"))
    clone = work / "logprobe"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    env.update(UV_CACHE_DIR=str(work / "uv-cache"), PIP_CACHE_DIR=str(work / "pip-cache"),
               LOGPROBE_CACHE=str(work / "logprobe-cache"))
    load_before = os.getloadavg()
    setup_s, setup_rc = _timed(["./dev", "setup", "conformance"], clone, env,
                               work / "setup.log")
    conformance_s, rc = _timed(["./dev", "conformance"], clone, env, work / "conformance.log")
    verdict = _verdict(work / "conformance.log")
    result = {
        "date": time.strftime("%Y-%m-%d"), "breakdown": _breakdown(clone),
        "conformance_phases_seconds": _phases(work / "conformance.log"), "commit": subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True).stdout.strip(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "load_before": load_before},
        "setup_seconds": round(setup_s, 1), "setup_exit": setup_rc,
        "conformance_seconds": round(conformance_s, 1), "conformance_exit": rc,
        "total_seconds": round(setup_s + conformance_s, 1), "verdict": verdict,
        "command": "python bench/fresh_clone.py",
    }
    print(f"setup {setup_s:.1f} s, conformance {conformance_s:.1f} s, total "
          f"{setup_s + conformance_s:.1f} s (exit {rc}): {verdict}")
    out = ROOT / "bench" / "results" / f"fresh-clone-{result['date']}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written to {out}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
