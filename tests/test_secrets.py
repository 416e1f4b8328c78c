"""The API key never reaches the report, JUnit XML, the logs, the output or a reproducer."""

from conftest import run_suite

PLANTED = "sk-planted-0123456789abcdef"


def test_api_key_is_never_written(served, tmp_path):
    run = run_suite(served, tmp_path, f"--api-key={PLANTED}", "--fault=null-logprobs",
                    "-k", "test_lmeval_request_text_prompt", f"--junitxml={tmp_path / 'junit.xml'}")
    assert (tmp_path / "junit.xml").exists()
    assert run.returncode == 1, run.output[-2000:]
    row = run.report["tests"][0]
    assert row["verdict"] == "IGNORED"
    assert any("$OPENAI_API_KEY" in r for r in row["reproducers"])
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert PLANTED not in path.read_text(errors="replace"), path
    assert PLANTED not in run.output
