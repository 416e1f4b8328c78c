"""The run's server and its expectations: opened once per run (by the xdist controller
when there are workers, which get its description), and the expectation file chosen once
the server has named itself."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from logprobe.backend import Backend, open_backend
from logprobe.endpoint import EXIT_ENDPOINT_UNUSABLE, EXIT_SERVER_START_FAILED, EndpointUnusable
from logprobe.expectations import Expectation, ExpectationSet
from logprobe.launch.process import ServerStartError
from logprobe.liveness import Watch
from logprobe.plugin.keys import (
    BACKEND_KEY,
    CLIENT_KEY,
    EXPECTATIONS_KEY,
    JUDGES_NO_SERVER_KEY,
    REPORT_KEY,
    SHARE_DIR_KEY,
    WATCH_KEY,
    WORKER_BACKEND,
    WORKER_SHARE_DIR,
)
from logprobe.plugin.options import options_of
from logprobe.plugin.terminal import terminal_line


def load_expectations(config: pytest.Config) -> ExpectationSet | None:
    """``--expectations FILE`` or ``none``; None: chosen once the server has named itself
    (``expectations_of``)."""
    from logprobe import expectations

    given = options_of(config).expectations
    try:
        return expectations.given(given)
    except (OSError, ValueError) as exc:
        raise pytest.UsageError(f"--expectations {given}: {exc}") from exc


def expectations_of(config: pytest.Config, backend: Backend) -> ExpectationSet:
    """The run's expectation file: the one given, or the one of the framework the server
    named itself as (GET /version and /v1/models, or the launcher that booted it)."""
    from logprobe import expectations

    chosen = config.stash.get(EXPECTATIONS_KEY, None)
    if chosen is not None:
        return chosen
    chosen = expectations.for_family(backend.identity.family, backend.identity.identified_by)
    config.stash[EXPECTATIONS_KEY] = chosen
    return chosen


def expectations_for(config: pytest.Config, backend: Backend) -> list[Expectation]:
    """The run's expectations that hold for this server's version."""
    return expectations_of(config, backend).applying(backend.identity.server_version)


def open_backend_or_exit(config: pytest.Config) -> Backend:
    """Open the backend or end the run with one line and a distinct exit code."""
    from logprobe.launch.model import ModelPreparationError
    from logprobe.launch.programs import LauncherUnavailable, ServerNotInstalled

    options = options_of(config)
    try:
        backend = open_backend(options.backend_options(), say=terminal_line(config))
    except EndpointUnusable as exc:
        pytest.exit(f"logprobe: endpoint unusable: {exc}", returncode=EXIT_ENDPOINT_UNUSABLE)
    except ServerNotInstalled as exc:
        pytest.exit(f"logprobe: the server did not start: {exc}",
                    returncode=EXIT_SERVER_START_FAILED)
    except ServerStartError as exc:
        pytest.exit(f"logprobe: the server did not start: {exc}", returncode=EXIT_SERVER_START_FAILED)
    except (LauncherUnavailable, ModelPreparationError) as exc:
        pytest.exit(f"logprobe: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
    except ValueError as exc:  # an unknown fault name
        pytest.exit(f"logprobe: the fault proxy did not start: {exc}",
                    returncode=EXIT_SERVER_START_FAILED)
    report = config.stash[REPORT_KEY]
    report.backend = backend.describe(options.backend_name)
    chosen = expectations_of(config, backend)
    report.backend["expectations"] = {
        "file": chosen.file, "why": chosen.why, "entries": len(chosen.entries),
        "applied": len(chosen.applying(backend.identity.server_version))}
    report.backend["tolerance"] = options.tolerance.describe()
    report.write()
    return backend


def is_xdist_controller(config: pytest.Config) -> bool:
    return config.pluginmanager.has_plugin("dsession")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Under pytest-xdist the controller opens the backend once, before any worker starts."""
    config = session.config
    if is_xdist_controller(config) and not config.getoption("collectonly") \
            and not config.stash.get(JUDGES_NO_SERVER_KEY, False):
        config.stash[BACKEND_KEY] = open_backend_or_exit(config)
        config.stash[SHARE_DIR_KEY] = Path(tempfile.mkdtemp(prefix="logprobe-shared-"))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    backend = node.config.stash.get(BACKEND_KEY, None)
    if backend is not None:
        node.workerinput[WORKER_BACKEND] = backend.for_worker()
        node.workerinput[WORKER_SHARE_DIR] = str(node.config.stash[SHARE_DIR_KEY])


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The endpoint under test: ``--endpoint`` if given, else a server booted for the session
    (by the xdist controller when there are workers)."""
    config = request.config
    shared = getattr(config, "workerinput", {}).get(WORKER_BACKEND)
    if shared is not None:
        yield Backend.from_controller(shared)
        return
    backend = open_backend_or_exit(config)
    # Stopped at the session's end (RunCollector.pytest_sessionfinish, which pytest calls
    # on an interrupted run too; atexit and signal handlers stop it if even that is not
    # reached), after the run-level judgements: a server that died is restarted there to
    # replay the requests suspected of killing it.
    config.stash[BACKEND_KEY] = backend
    yield backend


def share_dir_of(config: pytest.Config) -> Path | None:
    """Where this process's workers share exchanges: given by the controller, or its own."""
    shared = getattr(config, "workerinput", {}).get(WORKER_SHARE_DIR)
    return Path(shared) if shared else config.stash.get(SHARE_DIR_KEY, None)


def watch_of(config: pytest.Config, backend: Backend) -> Watch:
    """This process's watch on the server (``logprobe.liveness``), made once."""
    watch = config.stash.get(WATCH_KEY, None)
    if watch is None:
        watch = Watch(backend, backend.identity.base_url, options_of(config).api_key,
                      lambda: config.stash.get(CLIENT_KEY, None), share_dir_of(config))
        config.stash[WATCH_KEY] = watch
    return watch
