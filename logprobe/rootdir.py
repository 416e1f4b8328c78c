"""Decide pytest's rootdir and ini file again once logprobe's options are known.

pytest decides them before any plugin adds its options (pytest-dev/pytest#8846, a known
limitation): in ``pytest --tokenizer /abs/dir`` the folder is taken for a test path, the
rootdir moves there, the project's ini file (``testpaths``, ``addopts``) goes unfound and
pytest collects everything under the working directory. ``--tokenizer=/abs/dir`` never
had the problem. This hook runs once the options are parsed, before any conftest is
loaded, and decides both again from the real test paths. It reaches into pytest's Config
(``_rootpath``, ``_inipath``, ``_inicfg``): on a pytest whose internals differ it does
nothing, and the ``--opt=VALUE`` spelling still works.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser,
                                  args: list[str]) -> None:
    ns = early_config.known_args_namespace
    if getattr(ns, "inifilename", None) or getattr(ns, "rootdir", None):
        return  # the user said where
    try:
        from _pytest.config.findpaths import determine_setup

        kwargs: dict[str, Any] = {"inifile": None, "args": list(ns.file_or_dir),
                                  "rootdir_cmd_arg": None,
                                  "invocation_dir": early_config.invocation_params.dir}
        if "override_ini" in inspect.signature(determine_setup).parameters:
            kwargs["override_ini"] = ns.override_ini
        rootpath, inipath, inicfg = determine_setup(**kwargs)[:3]
        if (rootpath, inipath) == (early_config.rootpath, early_config.inipath):
            return
        default_cut = str(early_config.inipath.parent if early_config.inipath
                          else early_config.rootpath)
        early_config._rootpath, early_config._inipath = rootpath, inipath  # type: ignore[attr-defined]
        early_config._inicfg = inicfg  # type: ignore[attr-defined]
        early_config._inicache.clear()  # type: ignore[attr-defined]
    except (ImportError, AttributeError, TypeError):
        return
    if ns.confcutdir == default_cut:
        ns.confcutdir = str(inipath.parent if inipath else rootpath)
    addopts = list(early_config.getini("addopts"))
    if addopts:  # the ini's own options, as pytest would have applied them
        early_config.pluginmanager.consider_preparse(addopts, exclude_only=True)
        args[:] = addopts + args
