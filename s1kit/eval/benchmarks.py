"""Benchmarks: AIME24/25, MATH500, AMC23, GPQA Diamond (Hub or local JSONL) and synthetic tasks.

    rows = load_benchmark("math500", path="data/math500.jsonl", limit=50)
    rows[0]  # {"id", "question", "answer", "kind", "benchmark"}
    rows = load_benchmark("synth:gcd", synth_n=50, synth_seed=1234)   # the embedded default's tasks
    source = benchmark_source("math500", path=None, revision=None)   # what results.json records

Each benchmark is one ``BenchmarkSpec``: its Hub dataset (with a revision the user can pin via
``--revision``), the split, the fields holding question and answer, and the grading kind.
Local files may use any of the listed field names. Prompts are the bare question, as in s1;
GPQA gets its four choices shuffled with a per-question seed and the gold becomes a letter.
GPQA Diamond is gated: load it with your Hub token or a local path; never commit its rows.

Revisions: every spec has a ``revision`` slot, and ``--data-revision`` pins one for a run. The
specs ship unpinned (``None``) because the Hub commit SHAs cannot be looked up offline; fill
them in (or pass ``--data-revision``) where the Hub is reachable. Whatever was used is recorded
in ``results.json`` (:func:`benchmark_source`): the revision, "unpinned" (with a warning: the
Hub's newest version may change under you) or "local file", always with the sha256 of the rows.

Synthetic tasks: ``synth`` (every family of :mod:`s1kit.synth.tasks`) or ``synth:<family>``
(``synth:gcd+mod_pow`` for several) builds ``synth_n`` problems per family with ``synth_seed``
through the tasks' public ``generate`` API (deterministic; held out from training data as long
as the seed differs from the one used for curation). Integer answers are graded with kind
"integer", anything else (sorted digit lists) with kind "exact": ``0 2 5`` must not equal ``2 5``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from s1kit.forcing.validation import ConfigError

log = logging.getLogger(__name__)


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
SYNTH = "synth"
_CANONICAL_INTEGER = re.compile(r"-?(?:0|[1-9]\d*)")


def benchmark_names() -> list[str]:
    return sorted(BENCHMARKS) + [SYNTH, f"{SYNTH}:<family>"]


def load_benchmark(name: str, path: str | None = None, limit: int | None = None,
                   revision: str | None = None, synth_n: int = 50, synth_seed: int = 1234,
                   synth_levels: Sequence[int] = ()) -> list[dict[str, Any]]:
    """Rows with ``id``, ``question`` (the prompt), ``answer`` (gold), ``kind``, ``benchmark``."""
    if is_synth(name):
        rows = load_synth(name, synth_n, synth_seed, synth_levels)
        return rows[:limit] if limit else rows
    if name not in BENCHMARKS:
        raise ConfigError("benchmarks", name, "one of " + ", ".join(benchmark_names()))
    spec = BENCHMARKS[name]
    raw = _read_jsonl(path) if path else _read_hub(spec, revision or spec.revision)
    rows = [_normalise(name, spec, i, r) for i, r in enumerate(raw)]
    return rows[:limit] if limit else rows


def is_synth(name: str) -> bool:
    return name == SYNTH or name.startswith(SYNTH + ":")


def synth_families(name: str) -> list[str]:
    """``synth`` -> every family; ``synth:gcd+mod_pow`` -> those two (checked against the tasks)."""
    from s1kit.synth.tasks import FAMILIES

    if name == SYNTH:
        return list(FAMILIES)
    wanted = [f for f in name.split(":", 1)[1].split("+") if f]
    unknown = [f for f in wanted if f not in FAMILIES]
    if unknown or not wanted:
        raise ConfigError("benchmarks", name, "synth or synth:<family>[+<family>...] with families "
                          + ", ".join(FAMILIES))
    return wanted


def load_synth(name: str, n: int, seed: int, levels: Sequence[int] = ()) -> list[dict[str, Any]]:
    """``n`` seeded problems per family through :func:`s1kit.synth.tasks.generate` (``levels``
    cycled; empty: every level), interleaved across families."""
    from s1kit.synth.tasks import LEVELS, generate

    if not isinstance(n, int) or n < 1:
        raise ConfigError("synth_n", n, "an integer >= 1")
    levels = tuple(levels) or LEVELS
    if any(lv not in LEVELS for lv in levels):
        raise ConfigError("synth_levels", list(levels), f"levels among {list(LEVELS)}")
    per_family = [generate(family, n, seed=seed, levels=levels) for family in synth_families(name)]
    rows = []
    for i in range(n):  # interleaved, so --limit keeps every family
        for problems in per_family:
            problem = problems[i]
            kind = "integer" if _CANONICAL_INTEGER.fullmatch(problem.answer) else "exact"
            rows.append({"id": problem.id, "benchmark": name, "kind": kind, "question": problem.question,
                         "answer": problem.answer, "family": problem.family, "level": problem.level})
    return rows


def benchmark_source(name: str, path: str | None, revision: str | None, synth_n: int = 50,
                     synth_seed: int = 1234, synth_levels: Sequence[int] = ()) -> dict[str, Any]:
    """Where a benchmark's rows came from, for results.json; warns when a Hub load is unpinned."""
    if is_synth(name):
        levels = ",".join(map(str, synth_levels)) or "all"
        return {"source": "s1kit.synth.tasks", "families": synth_families(name),
                "revision": f"generated: n={synth_n} per family, seed={synth_seed}, levels={levels}"}
    if path:
        return {"source": str(path), "revision": "local file"}
    spec = BENCHMARKS[name]
    used = revision or spec.revision
    if used is None:
        log.warning("%s: loading %s from the Hub unpinned (its newest version may change; pin with "
                    "--data-revision)", name, spec.hub_id)
    return {"source": spec.hub_id, "config": spec.config, "split": spec.split, "revision": used or "unpinned"}


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
