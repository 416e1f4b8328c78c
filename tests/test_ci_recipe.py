"""docs/ci/logprobe-gate.yml, the CI-gate recipe: valid YAML for GitHub Actions, and every
logprobe command it runs exists and takes the options it is given."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from functools import cache

import yaml

from conftest import ROOT

RECIPE = ROOT / "docs" / "ci" / "logprobe-gate.yml"


def _steps() -> list[dict]:
    workflow = yaml.safe_load(RECIPE.read_text())
    # YAML 1.1 reads the key `on` as True: GitHub's parser does not, and neither matters here
    assert workflow.get("on", workflow.get(True)), "the workflow has no trigger"
    [job] = workflow["jobs"].values()
    assert job["runs-on"] and job["timeout-minutes"] <= 90
    return job["steps"]


@cache
def _help(*command: str) -> str:
    done = subprocess.run([sys.executable, *command, "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _options_known_to(subcommand: str) -> str:
    if subcommand == "run":  # everything after `logprobe run` is pytest's, with the plugin
        return _help("-m", "pytest", "-p", "no:cacheprovider")
    return _help("-m", "logprobe.cli", subcommand)


def test_the_recipe_is_a_workflow_of_pinned_actions():
    steps = _steps()
    for step in steps:
        if "uses" in step:
            assert re.fullmatch(r"actions/[a-z-]+@v\d+", step["uses"]), step["uses"]
    assert any("upload-artifact" in s.get("uses", "") and s.get("if") == "always()"
               for s in steps), "the report must be uploaded whether the gate passed or not"


def test_every_logprobe_command_of_the_recipe_exists_with_its_options():
    checked = 0
    for step in _steps():
        script = step.get("run", "")
        words = shlex.split(script.replace("\n", " ; "), comments=True)
        commands = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "logprobe"]
        for subcommand in commands:
            known = _options_known_to(subcommand)
            for option in sorted({w.split("=")[0] for w in words if w.startswith("--") and w != "--"}):
                assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", known), \
                    f"`logprobe {subcommand}` has no {option}"
                checked += 1
    assert checked >= 5, "the recipe runs logprobe serve, run and report with their options"


def test_the_recipe_installs_what_the_project_declares():
    install = next(s["run"] for s in _steps() if "pip install" in s.get("run", ""))
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    for extra in re.findall(r"\[(\w+)\]", install):
        assert extra in extras, f"no extra [{extra}] in pyproject.toml"
    for pinned in re.findall(r"([\w-]+==[\w.]+)", install):
        assert pinned in (ROOT / "dev").read_text(), f"{pinned} differs from ./dev's"
