"""How far a long test has got, in pytest's own way: log records.

The property tests and the end-to-end lm-eval run take minutes. They log what they are
doing to the ``logprobe`` logger, at most every few seconds: ``--log-cli-level=INFO``
shows it live (pytest's live logging; an xdist worker has no terminal, so run the long
test alone, e.g. ``-m e2e -p no:xdist``), and a failing test's report keeps it under
"Captured log call".
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

LOG = logging.getLogger("logprobe")


class Progress:
    """``step()`` logs ``what: done/total`` (or ``done`` when the total is unknown), no
    more often than every ``every`` seconds, and always the first and the last step."""

    def __init__(self, what: str, total: int | None = None, every: float = 5.0):
        self.what, self.total, self.every = what, total, every
        self.done = 0
        self._last = 0.0

    def step(self, done: int | None = None, detail: str = "") -> None:
        self.done = self.done + 1 if done is None else done
        now = time.monotonic()
        last = self.total is not None and self.done >= self.total
        if self.done > 1 and not last and now - self._last < self.every:
            return
        self._last = now
        of = f"/{self.total} ({100 * self.done // max(self.total, 1)}%)" \
            if self.total and self.done <= self.total else ""  # shrinking runs past the total
        LOG.info("%s: %d%s%s", self.what, self.done, of, f" {detail}" if detail else "")


@contextmanager
def watching(count: Callable[[], int], progress: Progress, every: float = 5.0) -> Iterator[None]:
    """Step ``progress`` from ``count()`` on a thread while the block runs (for work done
    elsewhere, such as lm-eval's requests counted in a recording)."""
    stop = threading.Event()

    def watch() -> None:
        seen = -1
        while not stop.wait(every):
            now = count()
            if now != seen:
                progress.step(now)
                seen = now

    thread = threading.Thread(target=watch, name="logprobe-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        progress.step(count())
