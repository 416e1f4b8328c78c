"""A server that requires a key (vLLM --api-key): one clear line without it, a clean run with it,
and the key never written anywhere."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conftest import Served, run_suite
from logprobe.endpoint import EXIT_ENDPOINT_UNUSABLE

KEY = "sk-logprobe-auth-test-7f3a9c"
SELECTION = "test_completions_logprobs_shape or test_lmeval_request_text_prompt"


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from logprobe.launch.vllm import VllmConfig, vllm_server

    process, resolved = vllm_server(VllmConfig(api_key=KEY), tmp_path_factory.mktemp("keyed"))
    with process:
        yield Served(resolved.base_url, None, process)


def test_without_the_key_says_pass_api_key(keyed_server, tmp_path):
    run = run_suite(keyed_server, tmp_path, "-k", SELECTION)
    assert run.returncode == EXIT_ENDPOINT_UNUSABLE, run.output[-2000:]
    assert "401: pass --api-key" in run.output


def test_with_the_key_everything_passes(keyed_server, tmp_path):
    run = run_suite(keyed_server, tmp_path, f"--api-key={KEY}", "-k", SELECTION)
    assert run.returncode == 0, run.output[-3000:]
    assert set(run.verdicts().values()) == {"PASS"}
    assert KEY not in run.output
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(errors="replace"), path
