"""The project's own tests: one embedded vLLM per run, shared by every test that needs a server.

``LOGPROBE_TEST_ENDPOINT`` points the tests at a server already running (to iterate
quickly); otherwise the embedded default is booted once and torn down at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# A command started in the background by a non-interactive shell (`cmd &` in a script)
# inherits SIGINT ignored, and so would every process the tests start: their Ctrl-C
# tests would then test nothing. Python leaves an ignored SIGINT ignored; a handler here
# is reset to the default in every child at exec, where Python turns it into
# KeyboardInterrupt again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))


VLLM_EXPECTATIONS = ROOT / "fixtures" / "expectations" / "vllm.yaml"


@dataclass
class Served:
    base_url: str
    tokenizer: str | None
    process: Any = None
    expectations: Path | None = None  # the backend's known deviations


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from logprobe.launch.model import embedded_model_dir
    from logprobe.launch.vllm import VllmConfig, vllm_server

    external = os.environ.get("LOGPROBE_TEST_ENDPOINT")
    if external:
        yield Served(external, os.environ.get("LOGPROBE_TEST_TOKENIZER"),
                     expectations=VLLM_EXPECTATIONS)
        return
    process, resolved = vllm_server(VllmConfig(), tmp_path_factory.mktemp("vllm"))
    with process:
        yield Served(resolved.base_url, str(embedded_model_dir()), process, VLLM_EXPECTATIONS)


@dataclass
class SuiteRun:
    returncode: int
    output: str
    report: dict[str, Any]

    def verdicts(self) -> dict[str, str]:
        return {t["nodeid"]: t["verdict"] for t in self.report.get("tests", [])}

    def violated(self) -> set[str]:
        return {i for t in self.report.get("tests", []) for i in t.get("violated", [])}

    def findings(self) -> list[dict[str, Any]]:
        return [f for t in self.report.get("tests", []) for f in t.get("findings", [])]


def run_suite(served: Served, report_dir: Path, *args: str, timeout: float = 600,
              tests: Path = ROOT / "suites", env: dict[str, str] | None = None,
              oracle: bool = True, select: list[str] | None = None) -> SuiteRun:
    """Run the conformance suite (or other conformance ``tests``, or the node ids ``select``)
    in a subprocess, as a user would, and read its run.json. ``oracle=False`` leaves the
    reference model unloaded (a third of a run's time on these machines)."""
    command = [sys.executable, "-m", "pytest", *(select or [str(tests)]), "-q", "-p", "no:randomly",
               f"--endpoint={served.base_url}", f"--report-dir={report_dir}", *args]
    if served.tokenizer:  # the embedded model's folder: the tokenizer and the reference oracle
        command += [f"--tokenizer={served.tokenizer}",
                    f"--reference-model={served.tokenizer if oracle else 'none'}"]
    if served.expectations:
        command.append(f"--expectations={served.expectations}")
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          check=False, env={**os.environ, **(env or {})})
    path = report_dir / "run.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    return SuiteRun(done.returncode, done.stdout + done.stderr, report)


@pytest.fixture(scope="session")
def direct_run(served: Served, tmp_path_factory: pytest.TempPathFactory) -> SuiteRun:
    return run_suite(served, tmp_path_factory.mktemp("direct"))


# The tiers: a test is a server test when it needs a real server, through a fixture that
# boots or reaches one (``served``) or because its module starts one itself (their
# ``pytestmark``); the rest (pure functions, and the plugin's own logic in process) are the
# fast tier that ``./dev fast`` runs.
SERVER_FIXTURES = {"served", "direct_run", "keyed_server"}
FAST_TIMEOUT_S = 300  # a fast test is seconds; a hang is stopped with its traceback
SERVER_TIMEOUT_S = 1800  # the slowest server test (a kill-matrix row, an lm-eval run) is minutes


def pytest_configure(config: pytest.Config) -> None:
    from logprobe.plugin.keys import JUDGES_NO_SERVER_KEY

    config.addinivalue_line("markers", "server: needs a real server (not in the fast tier)")
    # These tests start the servers they judge themselves (``served``, subprocesses): the
    # plugin's xdist controller must not boot one of its own for them.
    config.stash[JUDGES_NO_SERVER_KEY] = True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    timeouts = config.pluginmanager.has_plugin("timeout")
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.server)
        if timeouts and item.get_closest_marker("timeout") is None:
            server = item.get_closest_marker("server") is not None
            item.add_marker(pytest.mark.timeout(SERVER_TIMEOUT_S if server else FAST_TIMEOUT_S))


KILL_MATRIX: dict[str, dict[str, Any]] = {}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not KILL_MATRIX:
        return
    tr = terminalreporter
    tr.section("kill matrix (fault -> invariants that caught it)")
    for name, row in sorted(KILL_MATRIX.items()):
        status = "caught" if row["caught"] else "MISSED"
        tr.write_line(f"{name:28} {status:7} exit {row['returncode']}  "
                      f"targets {','.join(row['targets'])}  caught by {','.join(row['violated'])}"
                      f"  (properties alone: {','.join(row['caught_by_properties']) or '-'})")
    out = Path(os.environ.get("LOGPROBE_REPORT_DIR", ROOT / "reports")) / "kill-matrix.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(KILL_MATRIX, indent=1, sort_keys=True))
    tr.write_line(f"written to {out}")
