"""Lines the plugin tells the terminal as a run goes: what it boots, when the server goes
down, what it replays. A long run would be minutes of silence at those moments."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest


def terminal_line(config: pytest.Config) -> Callable[[str], None]:
    """``say(line)``: the line on pytest's terminal, on a line of its own, past output
    capturing (without xdist the backend opens inside the first test's setup). Nothing
    where there is no terminal (an xdist worker)."""
    def say(line: str) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None or hasattr(config, "workerinput"):
            return
        capture = config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            writer = getattr(reporter, "_tw", None)  # xdist's progress dots leave it mid-line
            if writer is not None and getattr(writer, "width_of_current_line", 0):
                writer.line()
            reporter.write_line(f"logprobe: {line}")
    return say
