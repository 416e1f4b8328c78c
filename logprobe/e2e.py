"""The end-to-end run: lm-evaluation-harness's MMLU against the server, then a second opinion.

lm-eval runs through a recording proxy, so every request it sends and every
answer it reads can be judged afterwards by the same LMEVAL-001 check as the
hand-written suite. The suite then scores the same questions itself, from
the next-token alternatives of each question's context (one request per
question, no echo involved), and compares answer by answer. A server that
ignores ``echo`` or shifts prompt logprobs makes lm-eval score at chance
without an error: only this comparison, not an accuracy threshold on a
handful of questions, tells such a run from an honest one.
"""

from __future__ import annotations

import json
import math
import os
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logprobe.client import Exchange, RecordingClient
from logprobe.invariants.core import Violation
from logprobe.invariants.lmeval import LMEVAL_005
from logprobe.mmlu import LETTERS, TaskSet
from logprobe.progress import Progress, watching
from logprobe.tolerance import DEFAULT, Tolerance


@dataclass
class LmEvalOutcome:
    results: dict[str, Any] | None
    error: str | None
    traceback: str
    elapsed: float
    exchanges: list[dict[str, Any]] = field(default_factory=list)

    def samples(self, task: str) -> list[dict[str, Any]]:
        if not self.results:
            return []
        return sorted(self.results.get("samples", {}).get(task, []), key=lambda s: s["doc_id"])


@contextmanager
def offline_datasets() -> Iterator[None]:
    """The local JSON tasks need no hub; make sure nothing tries one."""
    saved = {k: os.environ.get(k) for k in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")}
    os.environ.update({"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_lmeval(
    base_url: str,
    model: str,
    taskset: TaskSet | None,
    *,
    tokenizer: str | None,
    hub_limit: int | None = None,
    chat: bool = False,
    num_concurrent: int = 4,
    api_key: str | None = None,
    record: Path | None = None,
    seed: int = 1234,
) -> LmEvalOutcome:
    """Run lm-eval's Python API; an exception it raises is returned, never raised.

    ``taskset`` None runs lm-eval's own ``mmlu`` group from the hub (cais/mmlu,
    internet needed) with ``hub_limit`` questions per subject.
    """
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
    except ImportError as exc:
        from logprobe.judge import HarnessError

        raise HarnessError(f"the e2e tests need lm-eval: pip install 'logprobe[lmeval]' "
                           f"(in a clone: ./dev setup) ({exc})") from exc

    model_args = _model_args(base_url, model, tokenizer, chat, num_concurrent, seed)
    offline = taskset is not None
    progress = Progress("e2e: lm-eval requests answered", _requests(taskset, chat))

    def answered() -> int:
        return record.read_bytes().count(b"\n") if record is not None and record.exists() else 0

    started = time.monotonic()
    results, error, trace = None, None, ""
    try:
        # progress is counted in the recording, when there is one
        watch = watching(answered, progress) if record is not None else nullcontext()
        with offline_datasets() if offline else nullcontext(), watch, _api_key_set(api_key):
            results = lm_eval.simple_evaluate(
                model="local-chat-completions" if chat else "local-completions",
                model_args=model_args,
                tasks=taskset.tasks if offline else ["mmlu"],
                task_manager=TaskManager(include_path=str(taskset.include_path)) if offline
                else TaskManager(),
                limit=None if offline else hub_limit,
                apply_chat_template=chat,
                log_samples=True,
                random_seed=seed,
            )
    except Exception as exc:  # the point: whatever lm-eval raises becomes a verdict
        error = f"{type(exc).__name__}: {exc}"
        trace = traceback.format_exc(limit=6)
    exchanges = []
    if record is not None and record.exists():
        exchanges = [json.loads(line) for line in record.read_text().splitlines() if line.strip()]
    return LmEvalOutcome(results, error, trace, time.monotonic() - started, exchanges)


def _requests(taskset: TaskSet | None, chat: bool) -> int | None:
    """How many requests lm-eval will send: one per choice (one per question in chat)."""
    if taskset is None:
        return None
    return sum(1 if chat else len(doc.get("choices") or [None])
               for docs in taskset.docs.values() for doc in docs)


def _model_args(base_url: str, model: str, tokenizer: str | None, chat: bool,
                num_concurrent: int, seed: int) -> dict[str, Any]:
    """lm-eval's local-completions (or local-chat-completions) arguments for this server."""
    model_args: dict[str, Any] = {
        "base_url": f"{base_url}/chat/completions" if chat else f"{base_url}/completions",
        "model": model,
        "num_concurrent": num_concurrent,
        "max_retries": 1,
        "seed": seed,
    }
    if tokenizer and not chat:
        model_args.update(tokenizer=tokenizer, tokenizer_backend="huggingface")
    if chat:
        model_args["tokenizer_backend"] = None
    return model_args


@contextmanager
def _api_key_set(api_key: str | None) -> Iterator[None]:
    """OPENAI_API_KEY set to ``api_key`` while lm-eval runs (it reads the key from there),
    then put back as it was."""
    if not api_key:
        yield
        return
    before = os.environ.get("OPENAI_API_KEY")
    os.environ["OPENAI_API_KEY"] = api_key
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("OPENAI_API_KEY", None)
        else:
            os.environ["OPENAI_API_KEY"] = before


@dataclass
class OwnScore:
    task: str
    doc_index: int
    choice_logprobs: list[float | None]  # None: not among the alternatives returned
    exchange: Exchange

    @property
    def prediction(self) -> int | None:
        known = [(v, i) for i, v in enumerate(self.choice_logprobs) if v is not None]
        return max(known)[1] if known else None


def taskset_from_samples(outcome: LmEvalOutcome) -> TaskSet:
    """The documents lm-eval logged, as a TaskSet: the second opinion for a hub run."""
    samples = (outcome.results or {}).get("samples", {})
    docs = {task: [s["doc"] for s in outcome.samples(task)] for task in sorted(samples)}
    for task, task_docs in docs.items():
        for doc in task_docs:  # the hub's documents carry their subject; keep the template's
            doc.setdefault("subject", task.removeprefix("mmlu_"))
    return TaskSet(Path("."), sorted(docs), docs)


def score_independently(
    client: RecordingClient, model: str, taskset: TaskSet, tokenizer: Any | None,
    concurrency: int = 4, logprobs_limit: int = 20,
) -> list[OwnScore]:
    """One request per question: the alternatives for the token after ``Answer:``."""
    jobs = [(task, i, doc) for task in taskset.tasks for i, doc in enumerate(taskset.docs[task])]

    def score(job: tuple[str, int, dict[str, Any]]) -> OwnScore:
        task, i, doc = job
        context = taskset.context(task, doc)
        prompt: Any = tokenizer.encode(context, add_special_tokens=False) if tokenizer else context
        exchange = client.completions({"model": model, "prompt": prompt, "max_tokens": 1,
                                       "logprobs": min(20, logprobs_limit), "temperature": 0})
        top: dict[str, float] = {}
        body = exchange.json
        try:
            top = body["choices"][0]["logprobs"]["top_logprobs"][0] or {}
        except (KeyError, IndexError, TypeError):
            top = {}
        return OwnScore(task, i, [top.get(" " + letter) for letter in LETTERS], exchange)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(score, jobs))


def compare(outcome: LmEvalOutcome, own: list[OwnScore],
            tolerance: Tolerance = DEFAULT) -> tuple[list[Violation], dict[str, int]]:
    """LMEVAL-005: lm-eval's answers and loglikelihoods against the suite's own.

    lm-eval reads a prefill (echo), the suite a decode step (the alternatives after the
    context): each loglikelihood may differ by the tolerance, and two answers closer than
    that are a tie the numerics may break either way, not a disagreement."""
    found: list[Violation] = []
    stats = {"questions": 0, "compared": 0, "agreed": 0, "undetermined": 0}
    for score in own:
        stats["questions"] += 1
        samples = outcome.samples(score.task)
        if score.doc_index >= len(samples):
            found.append(Violation(LMEVAL_005, "lm-eval has no result for this question",
                                   location=f"{score.task}[{score.doc_index}]"))
            continue
        theirs = [resp[0] for resp in samples[score.doc_index]["filtered_resps"]]
        lm_pred = max(range(len(theirs)), key=lambda c: (theirs[c], -c))
        ours = score.prediction
        where = f"{score.task}[{score.doc_index}]"
        if ours is None:
            stats["undetermined"] += 1
            continue
        stats["compared"] += 1
        off = [(LETTERS[c], theirs[c], v) for c, v in enumerate(score.choice_logprobs)
               if v is not None and (not math.isfinite(theirs[c])
                                     or abs(theirs[c] - v) > tolerance.per_token)]
        mine = score.choice_logprobs
        near_tie = lm_pred != ours and mine[lm_pred] is not None \
            and mine[ours] - mine[lm_pred] <= tolerance.per_token  # type: ignore[operator]
        if (lm_pred == ours or near_tie) and not off:
            stats["agreed"] += 1
            continue
        message = (f"lm-eval answered {LETTERS[lm_pred]}, the suite's own scoring {LETTERS[ours]}"
                   if lm_pred != ours else "lm-eval's loglikelihoods differ from the suite's")
        found.append(Violation(
            LMEVAL_005, message, location=where,
            expected={letter: v for letter, v in zip(LETTERS, score.choice_logprobs, strict=True)},
            actual={letter: v for letter, v in zip(LETTERS, theirs, strict=True)},
        ))
    return found, stats


def accuracy(outcome: LmEvalOutcome, tasks: list[str]) -> tuple[float, float, int]:
    """Mean acc over all questions, its standard error, and the number of questions."""
    values = [float(s["acc"]) for task in tasks for s in outcome.samples(task)]
    n = len(values)
    if n == 0:
        return math.nan, math.nan, 0
    mean = sum(values) / n
    stderr = math.sqrt(mean * (1 - mean) / (n - 1)) if n > 1 else math.nan
    return mean, stderr, n
