"""e2e: lm-evaluation-harness's MMLU against the server, checked answer by answer.

Selected with ``-m e2e``. Before lm-eval runs, a preflight sends lm-eval's
request for the first question and says what lm-eval will do with the
answer; lm-eval then runs anyway, to confirm the prediction.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from logprobe import e2e, mmlu
from logprobe.invariants import lmeval
from logprobe.invariants.core import Violation
from logprobe.judge import HarnessError

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def mmlu_tasks(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    config = request.config
    if config.getoption("--mmlu-source") == "hub":
        return None  # lm-eval's own mmlu group; the documents come back with its samples
    docs = mmlu.load_questions()
    subjects = sorted({d["subject"] for d in docs})
    limit = config.getoption("--mmlu-subjects")
    if limit:
        docs = [d for d in docs if d["subject"] in subjects[:limit]]
    chosen = mmlu.stratified(docs, config.getoption("--mmlu-per-subject"))
    return mmlu.write_tasks(chosen, tmp_path_factory.mktemp("mmlu"))


def _recording_proxy(upstream: str, folder: Path):
    from logprobe.proxy import proxy_process

    record = folder / "lmeval-exchanges.jsonl"
    process, url = proxy_process(upstream, folder, record=record)
    return process, url, record


def _preflight(api, model, tokenizer, mmlu_tasks) -> list[Violation]:
    task = mmlu_tasks.tasks[0]
    context = mmlu_tasks.context(task, mmlu_tasks.docs[task][0])
    prompt: Any = tokenizer.encode(context + " A", add_special_tokens=False) if tokenizer \
        else context + " A"
    exchange = api.completions(lmeval.lmeval_request(model, prompt))
    lengths = [len(prompt)] if tokenizer else None
    return lmeval.check_lmeval_response(exchange.request_json, exchange.json, lengths,
                                        exchange.status)


def test_mmlu_loglikelihood_through_lm_eval(backend, api, model, judge, mmlu_tasks,
                                            tokenizer_source, logprobs_limit, api_key, request,
                                            tmp_path):
    tokenizer = request.getfixturevalue("tokenizer") if tokenizer_source else None
    predicted = _preflight(api, model, tokenizer, mmlu_tasks) if mmlu_tasks else []
    if predicted:
        judge.record([], [lmeval.LMEVAL_001], [Violation(
            lmeval.LMEVAL_006, "preflight: lm-eval would crash or score wrongly here because "
            + "; ".join(v.message for v in predicted[:3]))], raise_now=False)

    proxy, url, record = _recording_proxy(backend.identity.base_url, tmp_path)
    with proxy:
        outcome = e2e.run_lmeval(url, model, mmlu_tasks, tokenizer=tokenizer_source,
                                 api_key=api_key, record=record,
                                 num_concurrent=request.config.getoption("--concurrency"),
                                 hub_limit=request.config.getoption("--mmlu-per-subject"))
    completions = [x for x in outcome.exchanges if x["path"].endswith("/completions")]
    if outcome.error is not None and not completions:
        # No response reached lm-eval, so no response can have made it raise.
        hint = ("; pass --tokenizer (lm-eval loads the served model's tokenizer, by the "
                f"model's name {model!r} otherwise, which needs the hub)"
                if tokenizer_source is None else "")
        raise HarnessError(f"lm-eval failed before sending any request: {outcome.error}{hint}")

    # 1. lm-eval raised nothing; if it did, name the response that made it raise.
    if outcome.error is not None:
        culprit = _first_unreadable(completions)
        judge.record([], [lmeval.LMEVAL_004], [Violation(
            lmeval.LMEVAL_004,
            f"lm-eval raised {outcome.error}"
            + (f" on a response LMEVAL-001 rejects ({culprit})" if culprit else "")
            + (f"; the preflight predicted it: {predicted[0].message}" if predicted else ""),
        )], raise_now=False)

    # 2. every loglikelihood request got logprobs for every prompt token.
    found: list[Violation] = []
    for exchange in completions:
        prompt = exchange["request"].get("prompt")
        lengths = [len(p) for p in prompt] if isinstance(prompt, list) and prompt \
            and isinstance(prompt[0], list) else None
        body = _parse(exchange["body"])
        found += [Violation(v.invariant, v.message + f" (lm-eval request {json.dumps(prompt)[:80]})",
                            v.location, v.expected, v.actual, v.verdict)
                  for v in lmeval.check_lmeval_response(exchange["request"], body, lengths,
                                                        exchange["status"])]
    if len(found) > 6:  # one defect repeats on every request: show a few, count the rest
        found = [*found[:6], Violation(lmeval.LMEVAL_001, f"... {len(found) - 6} more violations "
                                       f"over {len(completions)} lm-eval requests")]
    judge.record([], [lmeval.LMEVAL_001], found, raise_now=False)
    if outcome.results is None:
        judge.conclude()  # no answers to compare: the run failed on what it raised
    if mmlu_tasks is None:
        mmlu_tasks = e2e.taskset_from_samples(outcome)

    # 3. lm-eval's answers equal the suite's own scoring of the same questions.
    own = e2e.score_independently(api, model, mmlu_tasks, tokenizer,
                                  concurrency=request.config.getoption("--concurrency"),
                                  logprobs_limit=logprobs_limit)
    disagreements, stats = e2e.compare(outcome, own)
    judge.record([s.exchange for s in own[:3]], [lmeval.LMEVAL_005], disagreements[:20],
                 raise_now=False)
    if stats["compared"] < stats["questions"] // 2:
        judge.record([], [lmeval.LMEVAL_005], [Violation(
            lmeval.LMEVAL_005, f"too few questions could be scored independently: {stats}")],
            raise_now=False)

    # 4. accuracy with its standard error, against the stored expectation.
    acc, stderr, n = e2e.accuracy(outcome, mmlu_tasks.tasks)
    judge.record([], [lmeval.LMEVAL_006], [Violation(
        lmeval.LMEVAL_006, f"MMLU acc {acc:.3f} ± {stderr:.3f} over {n} questions "
        f"({stats['agreed']}/{stats['compared']} answers agree with the suite's own scoring; "
        f"lm-eval took {outcome.elapsed:.0f} s)")])
    expected = _expectation(backend, request.config)
    if expected is not None and n == expected["questions"] \
            and abs(acc - expected["acc"]) > 3 * max(stderr, 1e-9):
        judge.record([], [lmeval.LMEVAL_007], [Violation(
            lmeval.LMEVAL_007, "accuracy outside 3 standard errors of the stored expectation",
            expected=expected["acc"], actual=acc)])
    judge.conclude()


def test_mmlu_generative_through_chat(backend, model, judge, mmlu_tasks, api_key, request,
                                      tmp_path):
    """The chat endpoint serves lm-eval's generative tasks (a few questions suffice)."""
    if mmlu_tasks is None:
        pytest.skip("the generative variant is defined over the offline documents")

    docs = [d for task in mmlu_tasks.tasks[:8] for d in mmlu_tasks.docs[task][:1]]
    generative = mmlu.write_tasks(docs, tmp_path / "gen", generative=True)
    outcome = e2e.run_lmeval(backend.identity.base_url, model, generative, tokenizer=None,
                             chat=True, api_key=api_key,
                             num_concurrent=request.config.getoption("--concurrency"))
    found = []
    if outcome.error is not None:
        found.append(Violation(lmeval.LMEVAL_008, f"lm-eval raised {outcome.error}"))
    for task in generative.tasks:
        for sample in outcome.samples(task):
            if not all(isinstance(r, str) for resp in sample["resps"] for r in resp):
                found.append(Violation(lmeval.LMEVAL_008, "a chat answer is not text",
                                       location=task, actual=sample["resps"]))
    if not any(outcome.samples(task) for task in generative.tasks) and outcome.error is None:
        found.append(Violation(lmeval.LMEVAL_008, "lm-eval returned no answers"))
    judge.record([], [lmeval.LMEVAL_008], found)


def _parse(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _first_unreadable(completions: list[dict[str, Any]]) -> str | None:
    for exchange in completions:
        body = _parse(exchange["body"])
        crash = lmeval.predict_lmeval_crash(body, [1], exchange["status"]) if body is not None \
            else "not JSON"
        if crash:
            return f"HTTP {exchange['status']} with {_logprobs_shape(body)}, where lm-eval raises {crash}"
    return None


def _logprobs_shape(body: Any) -> str:
    """What the first choice's logprobs field is, in a few words (the prompt echo is long)."""
    try:
        choice = body["choices"][0]
    except (KeyError, IndexError, TypeError):
        return f"a body without choices: {json.dumps(body)[:160]}"
    if "logprobs" not in choice:
        return "no choices[0].logprobs key"
    value = choice["logprobs"]
    if isinstance(value, dict):
        return f"choices[0].logprobs with keys {sorted(value)}"
    return f"choices[0].logprobs is {json.dumps(value)[:80]}"


def _expectation(backend, config) -> dict[str, Any] | None:
    if backend.identity.booted != "vllm" or config.getoption("--serve-model") or \
            config.getoption("--mmlu-subjects"):
        return None  # the stored accuracy is the embedded vLLM's, on the default selection
    path = mmlu.fixtures_dir() / "expected.json"
    if not path.exists():
        return None
    stored = json.loads(path.read_text())
    return stored.get(f"embedded-per-subject-{config.getoption('--mmlu-per-subject')}")
