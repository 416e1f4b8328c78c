"""A fault-injection proxy in front of a real OpenAI-compatible server.

It forwards every request and breaks responses in the named ways of
:mod:`logprobe.faults`: plain JSON bodies, SSE streams (event by event, as
they arrive, never buffered whole), error responses and GET routes. With no
fault the bytes pass through untouched. It exists to prove that the suite
catches what it claims to, and for users to try their CI gate against a
broken server.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from logprobe.faults import Fault, apply, dumps, resolve
from logprobe.launch.process import ServerProcess, free_port

HEALTH_PATH = "/__logprobe_proxy/health"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding",
              "upgrade", "proxy-authenticate", "proxy-authorization", "te", "trailers", "host"}


def make_app(upstream: str, faults: list[Fault], record: Path | None = None) -> web.Application:
    upstream = upstream.rstrip("/")
    if upstream.endswith("/v1"):
        upstream = upstream[: -len("/v1")]
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app["upstream"] = upstream
    app["faults"] = faults
    app["record"] = record

    async def start_session(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10), auto_decompress=False
        )

    async def close_session(app: web.Application) -> None:
        await app["session"].close()

    app.on_startup.append(start_session)
    app.on_cleanup.append(close_session)
    app.router.add_get(HEALTH_PATH, _health)
    app.router.add_route("*", "/{tail:.*}", _forward)
    return app


async def _health(request: web.Request) -> web.Response:
    names = [f.name for f in request.app["faults"]]
    return web.json_response({"status": "ok", "faults": names})


async def _forward(request: web.Request) -> web.StreamResponse:
    faults: list[Fault] = request.app["faults"]
    path = request.path
    raw_body = await request.read()
    payload: Any = None
    if raw_body:
        try:
            payload = json.loads(raw_body)
        except ValueError:
            payload = None
    if isinstance(payload, dict):
        dying = apply.dying(faults, path, payload)
        if dying is not None:
            await _die(request, dying)
        if any(f.request is not None for f in faults):
            payload = apply.to_request(faults, path, payload)
            raw_body = json.dumps(payload).encode()
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    url = request.app["upstream"] + request.path_qs
    session: aiohttp.ClientSession = request.app["session"]
    try:
        upstream = await session.request(request.method, url, data=raw_body or None, headers=headers)
    except aiohttp.ClientError as exc:
        return web.json_response(
            {"error": {"message": f"logprobe proxy: upstream unreachable: {exc}",
                       "type": "proxy_error", "param": None, "code": None}}, status=502)
    async with upstream:
        out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
        request_json = payload if isinstance(payload, dict) else {}
        if upstream.content_type == "text/event-stream":
            return await _stream(request, upstream, out_headers, path, request_json, faults)
        body = await upstream.read()
        status = upstream.status
        if any(f.json is not None for f in faults) and upstream.content_type == "application/json":
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            if parsed is not None:
                body = dumps(apply.to_json(faults, path, request_json, parsed))
        status, body = apply.to_raw(faults, path, request_json, status, body)
        _record(request.app["record"], path, payload, status, body)
        return web.Response(status=status, body=body, headers=out_headers)


async def _die(request: web.Request, fault: Fault) -> None:
    """Answer with a 500, then exit with nothing in between (no other request is answered
    after it): the process gone, its port refuses connections, requests in flight are reset."""
    error = {"error": {"message": f"logprobe proxy: the engine died ({fault.name})",
                       "type": "internal_server_error", "param": None, "code": None}}
    response = web.json_response(error, status=500)
    await response.prepare(request)
    await response.write_eof()
    print(f"logprobe proxy: {fault.name}: exiting after {request.method} {request.path}",
          flush=True)
    os._exit(70)


def _record(record: Path | None, path: str, payload: Any, status: int, body: bytes) -> None:
    """Append the exchange as it reached the client (after faults) to a JSONL file."""
    if record is None:
        return
    line = {"path": path, "request": payload, "status": status,
            "body": body.decode("utf-8", errors="replace")}
    with record.open("a") as out:
        out.write(json.dumps(line) + "\n")


async def _stream(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    headers: dict[str, str],
    path: str,
    request_json: dict[str, Any],
    faults: list[Fault],
) -> web.StreamResponse:
    response = web.StreamResponse(status=upstream.status, headers=headers)
    await response.prepare(request)
    if apply.needs_whole_stream(faults):
        for line in await _whole_stream(upstream, path, request_json, faults):
            await response.write(line)
        await response.write_eof()
        return response
    chunks = any(f.chunk is not None for f in faults)
    async for line in upstream.content:
        if chunks and line.startswith(b"data:"):
            payload = line[len(b"data:"):].strip()
            if payload and payload != b"[DONE]":
                try:
                    event = json.loads(payload)
                except ValueError:
                    event = None
                if event is not None:
                    line = b"data: " + dumps(apply.to_event(faults, path, request_json, event)) \
                        + b"\n"
        await response.write(line)
    await response.write_eof()
    return response


async def _whole_stream(upstream: aiohttp.ClientResponse, path: str,
                        request_json: dict[str, Any], faults: list[Fault]) -> list[bytes]:
    """The stream read to its end, its events transformed together (faults that merge
    chunks need to see the next one), as the lines to send."""
    events: list[Any] = []
    done = False
    async for line in upstream.content:
        payload = line[len(b"data:"):].strip() if line.startswith(b"data:") else b""
        if payload == b"[DONE]":
            done = True
        elif payload:
            try:
                events.append(json.loads(payload))
            except ValueError:
                events.append(payload.decode(errors="replace"))
    events = apply.to_stream(faults, path, request_json, events)
    lines = [b"data: " + (dumps(e) if isinstance(e, dict) else e.encode()) + b"\n\n"
             for e in events]
    return [*lines, b"data: [DONE]\n\n"] if done else lines


def run(upstream: str, port: int, faults: list[Fault], host: str = "127.0.0.1",
        record: Path | None = None) -> None:
    """Serve until interrupted (the ``logprobe proxy`` command)."""
    names = ", ".join(f.name for f in faults) or "none (transparent)"
    print(f"logprobe proxy: http://{host}:{port}/v1 -> {upstream} (faults: {names})", flush=True)
    web.run_app(make_app(upstream, faults, record), host=host, port=port, print=None)


def proxy_process(
    upstream: str, log_dir: Path, *, faults: str = "", record: Path | None = None
) -> tuple[ServerProcess, str]:
    """An unstarted proxy subprocess in front of ``upstream``, and its base URL.

    A subprocess keeps the proxy's event loop apart from the suite's and lets
    the same teardown as any server (process group, terminate, kill) apply.
    """
    import sys

    resolve(faults)  # an unknown name fails here, with the list of known ones
    port = free_port()
    argv = [sys.executable, "-m", "logprobe.cli", "proxy", "--upstream", upstream,
            "--port", str(port), "--fault", faults]
    if record is not None:
        argv += ["--record", str(record)]
    process = ServerProcess(
        argv,
        health_url=f"http://127.0.0.1:{port}{HEALTH_PATH}",
        log_path=log_dir / f"proxy-{port}.log",
        startup_timeout=60,
        name="fault proxy",
    )
    return process, f"http://127.0.0.1:{port}/v1"
