"""A hostile HTTP server for the project's tests: it lists a model like an OpenAI API, then
answers every POST in one broken way. A fault fixture, not a stand-in for a backend."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from recorded import VLLM, exchange

MODES = ["always-503", "html", "truncated-json", "huge-body", "endless-body", "slowloris", "reset-mid-body",
         "sse-no-done", "wrong-content-type"]


def _good_body() -> bytes:
    return json.dumps(exchange(VLLM, "completions_logprobs5")[2]).encode()


class Hostile(http.server.BaseHTTPRequestHandler):
    mode = "html"
    protocol_version = "HTTP/1.1"
    posts = 0  # per server class: how many POSTs it has answered

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._send(200, "application/json", b'{"object": "list", "data": [{"id": "smollm2"}]}')

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        mode = self.mode
        if self.headers.get("X-Logprobe-Probe"):  # the run's limit probe, before any test
            self._send(200, "application/json", _good_body())
            return
        type(self).posts += 1
        if mode == "busy-once":  # a 429 for the first request, then a good answer
            if type(self).posts == 1:
                self.send_response(429)
                self.send_header("Retry-After", "0")
                self.send_header("Content-Type", "application/json")
                body = b'{"error": {"message": "slow down", "type": "rate_limit"}}'
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self._send(200, "application/json", _good_body())
        elif mode == "cut-once":  # the first answer breaks off mid-body, then good ones
            if type(self).posts == 1:
                self._cut_mid_body()
            else:
                self._send(200, "application/json", _good_body())
        elif mode == "always-503":
            self._send(503, "application/json", b'{"error": {"message": "overloaded"}}')
        elif mode == "html":
            self._send(200, "text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>")
        elif mode == "truncated-json":
            body = _good_body()
            self._send(200, "application/json", body[: len(body) // 2])
        elif mode == "huge-body":
            self._send(200, "application/json", b'{"padding": "' + b"a" * 10_000_000 + b'"}')
        elif mode == "wrong-content-type":
            self._send(200, "text/plain", _good_body())
        elif mode == "endless-body":
            self._headers_only("application/json", chunked=True)
            chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n"
            with _quiet():
                while True:
                    self.wfile.write(chunk)
        elif mode == "slowloris":
            self._headers_only("application/json", chunked=True)
            with _quiet():
                for byte in _good_body():
                    self.wfile.write(b"1\r\n" + bytes([byte]) + b"\r\n")
                    self.wfile.flush()
                    time.sleep(0.2)
        elif mode == "reset-mid-body":
            self._cut_mid_body()
        elif mode == "sse-no-done":
            if not request.get("stream"):
                self._send(200, "application/json", _good_body())
                return
            self._headers_only("text/event-stream", chunked=False)
            choice = json.loads(_good_body())["choices"][0]
            first = {"choices": [{"index": 0, "text": ",", "logprobs": {
                "tokens": [","], "token_logprobs": [choice["logprobs"]["token_logprobs"][0]],
                "top_logprobs": [choice["logprobs"]["top_logprobs"][0]], "text_offset": [0]}}]}
            self.wfile.write(b"data: " + json.dumps(first).encode() + b"\n\n")
            self.wfile.flush()
            self.close_connection = True

    def _cut_mid_body(self) -> None:
        body = _good_body()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:100])
        self.wfile.flush()
        # The handler's file objects keep the socket open: shut it down explicitly.
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def _headers_only(self, content_type: str, *, chunked: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()


@contextmanager
def _quiet() -> Iterator[None]:
    """The client hangs up on endless answers; that is the point, not an error."""
    with suppress(BrokenPipeError, ConnectionResetError):
        yield


@contextmanager
def serve(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on a free loopback port for the duration; yield its root URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def hostile_server(mode: str) -> Iterator[str]:
    with serve(type(f"Hostile_{mode}", (Hostile,), {"mode": mode})) as root:
        yield root + "/v1"
