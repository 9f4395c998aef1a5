"""Benchmarks: AIME24/25, MATH500, AMC23, GPQA Diamond, from the Hub or a local JSONL file.

    rows = load_benchmark("math500", path="data/math500.jsonl", limit=50)
    rows[0]  # {"id", "question", "answer", "kind", "benchmark"}

Each benchmark is one ``BenchmarkSpec``: its Hub dataset (with a revision the user can pin via
``--revision``), the split, the fields holding question and answer, and the grading kind.
Local files may use any of the listed field names. Prompts are the bare question, as in s1;
GPQA gets its four choices shuffled with a per-question seed and the gold becomes a letter.
GPQA Diamond is gated: load it with your Hub token or a local path; never commit its rows.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s1kit.forcing.validation import ConfigError


@dataclass(frozen=True)
class BenchmarkSpec:
    hub_id: str
    split: str
    kind: str  # grading kind: "integer", "math" or "mcq"
    question_fields: tuple[str, ...] = ("problem", "question", "Question")
    answer_fields: tuple[str, ...] = ("answer", "expected_answer", "Correct Answer")
    config: str | None = None
    revision: str | None = None


BENCHMARKS: dict[str, BenchmarkSpec] = {
    "aime24": BenchmarkSpec("simplescaling/aime24_nofigures", "train", "integer"),
    "aime25": BenchmarkSpec("yentinglin/aime_2025", "train", "integer"),
    "math500": BenchmarkSpec("HuggingFaceH4/MATH-500", "test", "math"),
    "amc23": BenchmarkSpec("math-ai/amc23", "test", "math"),
    "gpqa_diamond": BenchmarkSpec("Idavidrein/gpqa", "train", "mcq", config="gpqa_diamond"),
}
GPQA_TEMPLATE = "{question}\n\nA) {A}\nB) {B}\nC) {C}\nD) {D}"


def load_benchmark(name: str, path: str | None = None, limit: int | None = None,
                   revision: str | None = None) -> list[dict[str, Any]]:
    """Rows with ``id``, ``question`` (the prompt), ``answer`` (gold), ``kind``, ``benchmark``."""
    if name not in BENCHMARKS:
        raise ConfigError("benchmarks", name, "one of " + ", ".join(sorted(BENCHMARKS)))
    spec = BENCHMARKS[name]
    raw = _read_jsonl(path) if path else _read_hub(spec, revision or spec.revision)
    rows = [_normalise(name, spec, i, r) for i, r in enumerate(raw)]
    return rows[:limit] if limit else rows


def dataset_hash(rows: list[dict[str, Any]]) -> str:
    """sha256 over the normalised rows (recorded in results, so runs name their data)."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps([row["id"], row["question"], row["answer"]], ensure_ascii=False).encode())
    return digest.hexdigest()


def _read_jsonl(path: str) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ConfigError("data", f"{path}:{lineno}", f"valid JSON lines ({err.msg})") from err
    return rows


def _read_hub(spec: BenchmarkSpec, revision: str | None) -> list[dict[str, Any]]:
    from datasets import load_dataset

    ds = load_dataset(spec.hub_id, spec.config, split=spec.split, revision=revision)
    return [dict(r) for r in ds]


def _normalise(name: str, spec: BenchmarkSpec, index: int, row: dict[str, Any]) -> dict[str, Any]:
    question = _first(row, spec.question_fields, name, index, "question")
    answer = _first(row, spec.answer_fields, name, index, "answer")
    rid = str(row.get("id", row.get("unique_id", row.get("Record ID", f"{name}-{index}"))))
    out = {"id": rid, "benchmark": name, "kind": spec.kind, "question": str(question), "answer": str(answer)}
    if spec.kind == "mcq":
        out.update(_shuffle_choices(rid, str(question), row))
    return out


def _first(row: dict[str, Any], fields: tuple[str, ...], name: str, index: int, what: str) -> Any:
    for field_name in fields:
        if field_name in row and row[field_name] not in (None, ""):
            return row[field_name]
    raise ConfigError(f"{name}[{index}]", sorted(row), f"a row with a {what} field ({', '.join(fields)})")


def _shuffle_choices(rid: str, question: str, row: dict[str, Any]) -> dict[str, Any]:
    """GPQA: the correct and three incorrect answers in a per-question seeded order."""
    options = [row["Correct Answer"], row["Incorrect Answer 1"], row["Incorrect Answer 2"], row["Incorrect Answer 3"]]
    order = list(range(4))
    random.Random(hashlib.sha256(rid.encode()).hexdigest()).shuffle(order)
    letters = "ABCD"
    choices = {letters[pos]: str(options[src]).strip() for pos, src in enumerate(order)}
    gold = letters[order.index(0)]
    return {"question": GPQA_TEMPLATE.format(question=question.strip(), **choices), "answer": gold,
            "choices": choices}
