"""The pytest plugin: options, the endpoint and client fixtures, verdicts and the report.

Loaded by the repository's root conftest and, when logprobe is installed, by
its ``pytest11`` entry point, so ``pytest --endpoint URL`` works from a
checkout and from anywhere the package is installed. pytest reads hooks and
fixtures off this module; each lives in the module of its one job:

- ``options``: the command line, parsed once into ``RunOptions``;
- ``profiles``: the hypothesis profiles;
- ``session``: the server under test, opened once per run, and its expectations;
- ``fixtures``: what a conformance test asks for;
- ``verdicts``: a test's verdict, decided once; ``rows``: its run.json row;
- ``collector`` and ``run_level``: the run report, and the run judged as a whole;
- ``keys``: the stash keys they share.
"""

from __future__ import annotations

from typing import Any

import pytest

from logprobe.plugin.collector import RunCollector
from logprobe.plugin.fixtures import (  # noqa: F401  (fixtures pytest finds here)
    _expected_failures,
    api,
    api_key,
    judge,
    logprobs_limit,
    make_judge,
    model,
    prompt_tokenizer,
    shared_api,
    tokenizer,
    tokenizer_source,
    tolerance,
)
from logprobe.plugin.keys import BASELINE_DIFF_KEY, EXPECTATIONS_KEY, REPORT_KEY
from logprobe.plugin.options import add_options, options_of
from logprobe.plugin.profiles import register_hypothesis_profiles
from logprobe.plugin.rows import (  # noqa: F401  (hooks)
    pytest_runtest_makereport,
    pytest_runtest_makereport_concise,
)
from logprobe.plugin.session import (  # noqa: F401  (hooks and a fixture)
    backend,
    load_expectations,
    pytest_configure_node,
    pytest_sessionstart,
)
from logprobe.report.run import RunReport
from logprobe.rootdir import pytest_load_initial_conftests  # noqa: F401  (a hook)

register_hypothesis_profiles()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: end-to-end lm-eval runs (not selected by default)")
    if not config.getoption("hypothesis_profile", default=None):
        from hypothesis import settings

        settings.load_profile("ci")
    options = options_of(config)  # a malformed value is a usage error before anything starts
    report = RunReport()
    if options.report_dir:
        report.path = options.report_dir / "run.json"
    report.secrets = options.secrets
    config.stash[REPORT_KEY] = report
    loaded = load_expectations(config)
    if loaded is not None:
        config.stash[EXPECTATIONS_KEY] = loaded
    if hasattr(config, "workerinput"):
        report.path = None  # an xdist worker: the controller writes run.json
    else:
        config.pluginmanager.register(RunCollector(config), "logprobe-run-collector")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """e2e runs only when selected with -m."""
    if config.getoption("-m"):
        return
    keep = [item for item in items if item.get_closest_marker("e2e") is None]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep


def _leave_out_pytest_s_failed_list(tr: Any, config: pytest.Config) -> None:
    """pytest's short summary, printed after this one, would list every failed (and
    expected-to-fail) test again, one line each (43 lines for llama-server), below the
    defects that group them: left out unless the command line asks for it with ``-r`` (the
    ini file's ``-ra`` is a default, not an ask). pytest reads ``reportchars`` as it prints."""
    import os
    import shlex

    given = [*config.invocation_params.args, *shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))]
    if any(arg.startswith("-r") for arg in given) or not set(tr.reportchars) & set("fEx"):
        return
    tr.reportchars = "".join(c for c in tr.reportchars if c not in "fEx")
    tr.write_line("(pytest's list of failed tests is left out: the defects above group them; "
                  "-rfE lists them)")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The run in about one screen (``logprobe.report.summary``), then the baseline diff."""
    from logprobe.report.summary import summary_lines

    run = config.stash.get(REPORT_KEY, None)
    if run is None or not run.tests:
        return
    tr = terminalreporter
    tr.section("logprobe")
    for line, markup in summary_lines(run.as_dict(), str(run.path) if run.path else None):
        tr.write_line(line, **markup)
    _leave_out_pytest_s_failed_list(tr, config)
    compared = config.stash.get(BASELINE_DIFF_KEY, None)
    if compared:
        tr.section("logprobe: against the baseline")
        for line in compared.splitlines():
            tr.write_line(line)
