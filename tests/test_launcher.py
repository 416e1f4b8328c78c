"""The launcher never leaves a process behind and explains a server that will not start."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
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


def test_gpu_command_line_is_vllm_serve_without_cpu_flags():
    argv = VllmConfig(model="internlm/internlm2_5-7b-chat", port=23333, gpu=True).argv()
    assert argv[:3] == ["vllm", "serve", "internlm/internlm2_5-7b-chat"]
    assert "--enforce-eager" not in argv and "--dtype" not in argv
