"""A server that answers instantly: the suite's own cost, apart from any server's.

``python -m logprobe.replay record --upstream URL --port P --store FILE`` forwards every
request to a real server and keeps each answer (status, content type, the body's bytes,
a stream's whole text) under its method, path and body; ``replay --port P --store FILE``
then answers the same requests from the file, with no server behind it. A request seen
several times gets its answers in the order they were recorded (a repeat of an unseeded
sampled request came back differently), the last one from then on. A request never
recorded is a 404 whose body says so, counted at ``GET /_replay/stats``: a suite whose
requests all replay judged the very answers it judged live.

Used by ``python -m bench --only client-floor``; a measurement tool, not a fault proxy
(``logprobe proxy`` is that).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length",
              "content-encoding", "host"}


def key(method: str, path_qs: str, body: bytes) -> str:
    """A request's identity: a JSON body by its content (key order aside), else its bytes."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True) if body else ""
    except ValueError:
        canonical = body.decode("utf-8", errors="replace")
    return f"{method} {path_qs} {canonical}"


def record_app(upstream: str, store: Path) -> web.Application:
    answers: dict[str, list[dict[str, Any]]] = {}

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        session: aiohttp.ClientSession = request.app["session"]
        async with session.request(request.method, upstream + request.path_qs, data=body or None,
                                   headers=headers) as got:
            payload = await got.read()
            content_type = got.headers.get("Content-Type", "application/json")
            answers.setdefault(key(request.method, request.path_qs, body), []).append(
                {"status": got.status, "content_type": content_type,
                 "body": payload.decode("utf-8", errors="surrogateescape")})
        return web.Response(status=got.status, body=payload,
                            headers={"Content-Type": content_type})

    async def open_session(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600))

    async def close_session(app: web.Application) -> None:
        await app["session"].close()
        store.write_text(json.dumps(answers))  # once, when stopped (SIGINT or SIGTERM)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def replay_app(store: Path) -> web.Application:
    answers: dict[str, list[dict[str, Any]]] = json.loads(store.read_text())
    served: dict[str, int] = {}
    stats = {"answered": 0, "missed": 0, "missed_requests": []}

    async def answer(request: web.Request) -> web.Response:
        if request.path == "/_replay/stats":
            return web.json_response(stats)
        body = await request.read()
        found = answers.get(key(request.method, request.path_qs, body))
        if not found:
            stats["missed"] += 1
            stats["missed_requests"] = (stats["missed_requests"] + [
                f"{request.method} {request.path_qs} {body[:200].decode(errors='replace')}"])[-20:]
            return web.json_response({"error": {"message": "logprobe.replay: not recorded",
                                                "type": "not_found", "param": None,
                                                "code": None}}, status=404)
        seen = served.get(id(found), 0)
        served[id(found)] = seen + 1
        chosen = found[min(seen, len(found) - 1)]
        stats["answered"] += 1
        return web.Response(status=chosen["status"],
                            body=chosen["body"].encode("utf-8", errors="surrogateescape"),
                            headers={"Content-Type": chosen["content_type"]})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["record", "replay"])
    parser.add_argument("--upstream", help="record: the real server's root URL (no /v1)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--store", required=True, help="the JSON file of recorded answers")
    args = parser.parse_args()
    store = Path(args.store)
    if args.mode == "record":
        if not args.upstream:
            parser.error("record needs --upstream")
        app = record_app(args.upstream.rstrip("/"), store)
    else:
        app = replay_app(store)
    print(f"logprobe.replay: {args.mode} on http://127.0.0.1:{args.port}", flush=True)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
