"""Find the program that starts a server, the way the suite's own interpreter would.

A server installed with pip lives beside the interpreter that runs the suite, and
its console script is often not on PATH: a venv that is not activated, or
``.venv/bin/python -m pytest`` (seen with vLLM on a GPU machine: ``FileNotFoundError:
'vllm'`` and an INTERNALERROR). So a launcher looks, in this order, for the module
in this interpreter (``python -m MODULE``), for the script beside the interpreter,
and only then on PATH. A server found nowhere is :class:`ServerNotInstalled`: one
line saying what to install, and the run exits 7 (the server did not start).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path


class LauncherUnavailable(RuntimeError):
    """The backend cannot be booted here; the message says what to install or pass."""


class ServerNotInstalled(LauncherUnavailable):
    """The server's package or program is not installed: the server cannot start (exit 7)."""


def module_available(module: str) -> bool:
    """Whether this interpreter can import ``module`` (its top package is looked up without
    importing it: a GPU framework's import alone can take seconds or fail without a GPU)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a broken install
        return False


def beside_interpreter(script: str) -> str | None:
    """``script`` in the folder of the interpreter running the suite (a venv's bin/)."""
    return shutil.which(script, path=str(Path(sys.executable).parent))


def server_command(*, module: str | None, script: str | None, install: str) -> list[str]:
    """The argv prefix that starts a server: ``python -m module`` when this interpreter has
    it, else ``script`` beside the interpreter, else ``script`` on PATH. The caller adds the
    subcommand and flags (``python -m vllm.entrypoints.cli.main`` and ``vllm`` both take
    ``serve MODEL ...``).

    Raises ``ServerNotInstalled`` naming ``install`` when none is found.
    """
    if module is not None and module_available(module):
        return [sys.executable, "-m", module]
    found = (beside_interpreter(script) or shutil.which(script)) if script else None
    if found is None:
        looked = [f"no module {module!r} in {sys.executable}"] if module else []
        if script:
            looked.append(f"no {script!r} beside it or on PATH")
        raise ServerNotInstalled(f"{script or module} is not installed here ({', '.join(looked)}): "
                                 f"{install}")
    return [found]
