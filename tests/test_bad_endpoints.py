"""An unusable endpoint ends the run with one clear error and exit code 6, not a test per check."""

from __future__ import annotations

import http.server
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile import serve

from conftest import Served, run_suite
from logprobe.endpoint import EXIT_ENDPOINT_UNUSABLE
from logprobe.launch.process import free_port


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200
    content_type = "text/html"
    body = b"<html><body>Welcome to nginx!</body></html>"

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def html_server() -> Iterator[str]:
    with serve(_Handler) as url:
        yield url


@pytest.fixture
def auth_server() -> Iterator[str]:
    class Unauthorized(_Handler):
        status = 401
        content_type = "application/json"
        body = b'{"error": {"message": "Unauthorized"}}'

    with serve(Unauthorized) as url:
        yield url


def _assert_one_clear_error(run, needle: str) -> None:
    assert run.returncode == EXIT_ENDPOINT_UNUSABLE, run.output[-2000:]
    assert needle in run.output, run.output[-2000:]
    assert "Traceback" not in run.output
    assert run.report == {} or run.report.get("tests") == []


def test_connection_refused(tmp_path: Path):
    run = run_suite(Served(f"http://127.0.0.1:{free_port()}", None), tmp_path)
    _assert_one_clear_error(run, "cannot connect to")


def test_unknown_host(tmp_path: Path):
    run = run_suite(Served("http://no-such-host.invalid:8000", None), tmp_path)
    _assert_one_clear_error(run, "cannot connect to")


def test_tls_to_a_plain_port(tmp_path: Path, html_server: str):
    run = run_suite(Served(html_server.replace("http://", "https://"), None), tmp_path)
    _assert_one_clear_error(run, "is it a plain HTTP port? try http://")


def test_not_an_openai_api(tmp_path: Path, html_server: str):
    run = run_suite(Served(html_server, None), tmp_path)
    _assert_one_clear_error(run, "does not look like an OpenAI-compatible API")


def test_missing_api_key(tmp_path: Path, auth_server: str):
    run = run_suite(Served(auth_server, None), tmp_path)
    _assert_one_clear_error(run, "pass --api-key")


def test_unknown_fault_name(tmp_path: Path, html_server: str, served: Served):
    run = run_suite(served, tmp_path, "--fault=no-such-fault")
    assert run.returncode != 0
    assert "unknown fault(s) no-such-fault" in run.output
