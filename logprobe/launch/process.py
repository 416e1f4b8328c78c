"""Run a server as a child process that can never outlive us.

Modelled on vLLM's ``RemoteOpenAIServer`` (tests/utils.py): a free port, a
health poll that also notices the process died, and a terminate-wait-kill
teardown. Two additions matter for a CI gate:

* the child runs in its own session (process group), and teardown signals the
  whole group, so the API server's engine workers die with it;
* every live server is also registered for ``atexit`` and for SIGTERM/SIGHUP,
  so a run that is interrupted or crashes still tears its servers down.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType

import httpx


class ServerStartError(RuntimeError):
    """The server died or never became healthy; the message carries its log tail."""


class ServerDiedError(RuntimeError):
    """The server exited while the suite was still using it."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:])


WAIT_REPORT_S = 15.0

_live: set[ServerProcess] = set()
_live_lock = threading.Lock()
_handlers_installed = False


def _stop_all() -> None:
    with _live_lock:
        servers = list(_live)
    for server in servers:
        server.stop()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _stop_all()
    # Re-deliver with the default action so the exit status says "killed by signal".
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_handlers() -> None:
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_stop_all)
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) in (signal.SIG_DFL, None):
                signal.signal(signum, _on_signal)


class ServerProcess:
    """A child server process with health polling and group-wide teardown."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        health_url: str,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 600.0,
        name: str = "server",
        redact: Sequence[str] = (),
    ) -> None:
        self.argv = list(argv)
        self.redact = [secret for secret in redact if secret]  # never shown in a message
        self.health_url = health_url
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.startup_timeout = startup_timeout
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_seconds: float | None = None
        # Told every ``wait_report_s`` while the server is not ready yet: seconds so far, and
        # the log's last line (a boot can take minutes, silent otherwise).
        self.on_wait: Callable[[float, str], None] | None = None
        self.wait_report_s = WAIT_REPORT_S

    def start(self) -> None:
        _install_handlers()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed once Popen has its own copy
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        except OSError as exc:  # no such program, not executable: the server did not start
            raise ServerStartError(f"{self.name} could not be started: {exc}\n"
                                   f"command: {self.command_line()}") from exc
        finally:
            log.close()
        with _live_lock:
            _live.add(self)
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise

    def command_line(self) -> str:
        return self.redacted(" ".join(self.argv))

    def redacted(self, text: str) -> str:
        """``text`` as messages show it: any secret (a framework whose key is only a flag, and
        which may print its arguments into its log) replaced by ``***``."""
        for secret in self.redact:
            text = text.replace(secret, "***")
        return text

    def _wait_healthy(self) -> None:
        assert self.proc is not None
        started = time.monotonic()
        deadline = started + self.startup_timeout
        told = started
        with httpx.Client(timeout=5.0) as client:
            while True:
                code = self.proc.poll()
                if code is not None:
                    raise ServerStartError(
                        f"{self.name} exited with code {code} before it was ready.\n"
                        f"command: {self.command_line()}\n"
                        f"last lines of {self.log_path}:\n{self.redacted(tail(self.log_path))}"
                    )
                try:
                    # 401: up, and asking for the key we hold (a keyed server's /v1/models)
                    if client.get(self.health_url).status_code in (200, 401):
                        self.ready_seconds = time.monotonic() - started
                        return
                except httpx.HTTPError:
                    pass
                if self.on_wait is not None and time.monotonic() - told >= self.wait_report_s:
                    told = time.monotonic()
                    self.on_wait(told - started, self.redacted(tail(self.log_path, 1)).strip())
                if time.monotonic() > deadline:
                    raise ServerStartError(
                        f"{self.name} was not healthy at {self.health_url} after "
                        f"{self.startup_timeout:.0f} s.\n"
                        f"last lines of {self.log_path}:\n{self.redacted(tail(self.log_path))}"
                    )
                time.sleep(0.5)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        """Raise ``ServerDiedError`` with the log tail if the server has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise ServerDiedError(
                f"{self.name} died (exit code {self.proc.returncode}).\n"
                f"last lines of {self.log_path}:\n{self.redacted(tail(self.log_path))}"
            )

    def stop(self, grace: float = 10.0) -> None:
        """Terminate the whole process group, wait, then kill what is left."""
        proc = self.proc
        if proc is None:
            return
        with _live_lock:
            _live.discard(self)
        pgid = proc.pid  # start_new_session makes the child its group leader
        _signal_group(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
        # Workers may ignore SIGTERM or outlive the leader: kill the group regardless.
        _signal_group(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):  # a kernel-level hang
            proc.wait(timeout=grace)
        _wait_group_gone(pgid, timeout=grace)

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _wait_group_gone(pgid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        except PermissionError:
            return
        time.sleep(0.1)
