"""What the first setup installs, timed: ``python bench/install.py``.

Installs this checkout four ways, each into a new virtualenv with an empty uv cache of its
own, as ``./dev`` does (uv with ``--compile-bytecode`` and pip's find-links): the extras
``./dev conformance`` needs and the extras of ``./dev test``, each with and without the
packages ``./dev`` leaves out (its ``UNUSED``: triton and PyPI's torchvision, torchaudio,
torchcodec). Prints the wall time and the size of each environment, and writes
``bench/results/install-<date>.json``. Downloads move with PyPI's speed: compare the rows
of one run, not runs of different days.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UV_VERSION = re.search(r'^UV_VERSION=(\S+)', (ROOT / "dev").read_text(), re.M)[1]
UNUSED = re.search(r'^UNUSED="([^"]*)"', (ROOT / "dev").read_text(), re.M)[1].split()
EXTRAS = {name: re.search(rf'^EXTRAS_{name}="([^"]*)"', (ROOT / "dev").read_text(), re.M)[1]
          for name in ("conformance", "all")}


def _find_links(pip: Path) -> list[str]:
    links = os.environ.get("PIP_FIND_LINKS") or subprocess.run(
        [str(pip), "config", "get", "global.find-links"], capture_output=True, text=True,
        check=False).stdout
    return [arg for link in links.split() for arg in ("--find-links", link)]


def _size_mb(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) // 2**20


def install(work: Path, extras: str, exclude: bool) -> dict[str, object]:
    venv, cache = work / "venv", work / "uv-cache"
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"uv=={UV_VERSION}"],
                   check=True, capture_output=True)
    command = [str(venv / "bin" / "uv"), "pip", "install", "-q", "--compile-bytecode",
               "--python", str(venv / "bin" / "python"), *_find_links(venv / "bin" / "pip")]
    if exclude:
        (work / "excluded.txt").write_text("\n".join(UNUSED) + "\n")
        command += ["--excludes", str(work / "excluded.txt")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    env["UV_CACHE_DIR"] = str(cache)
    start = time.monotonic()
    done = subprocess.run([*command, "-e", f".[{extras}]"], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)
    seconds = time.monotonic() - start
    return {"extras": extras, "excluded": UNUSED if exclude else [],
            "seconds": round(seconds, 1), "exit": done.returncode,
            "environment_mb": _size_mb(venv), "error": done.stderr[-500:] if done.returncode else ""}


def main() -> None:
    rows = []
    for level, extras in EXTRAS.items():
        for exclude in (True, False):
            with tempfile.TemporaryDirectory(prefix="logprobe-install-") as work:
                row = {"for": level, **install(Path(work), extras, exclude)}
            rows.append(row)
            print(f"{level:12} {'without' if exclude else 'with':7} the unused: "
                  f"{row['seconds']:6.1f} s, {row['environment_mb']} MB (exit {row['exit']})")
    result = {"date": time.strftime("%Y-%m-%d"), "command": "python bench/install.py",
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "load_before": os.getloadavg()},
              "rows": rows}
    out = ROOT / "bench" / "results" / f"install-{result['date']}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
