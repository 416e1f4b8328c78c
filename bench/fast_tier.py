"""The inner loop's cost: ``python bench/fast_tier.py``.

Runs ``./dev fast`` (lint, then the project's tests that need no server, on two workers)
in this checkout, its environment already set up, and writes
``bench/results/fast-tier-<date>.json``: the wall time of the whole command, pytest's own
figure and its summary line. A measurement, not a test: the machine is shared, so it
records the load average beside the figures.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    load_before = os.getloadavg()
    start = time.monotonic()
    done = subprocess.run(["./dev", "fast", "-q", "-p", "no:randomly"], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    wall = time.monotonic() - start
    lines = (done.stdout + done.stderr).strip().splitlines()
    summary = next((line for line in reversed(lines) if " passed" in line or " failed" in line),
                   lines[-1] if lines else "")
    pytest_s = re.search(r" in ([0-9.]+)s", summary)
    result = {
        "date": time.strftime("%Y-%m-%d"), "commit": subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "load_before": load_before},
        "wall_seconds": round(wall, 1), "pytest_seconds": float(pytest_s[1]) if pytest_s else None,
        "exit": done.returncode, "summary": summary, "command": "python bench/fast_tier.py",
    }
    out = ROOT / "bench" / "results" / f"fast-tier-{result['date']}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"./dev fast: {result['wall_seconds']} s wall, pytest {result['pytest_seconds']} s: "
          f"{summary} (exit {done.returncode}); written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
