"""Decontamination: planted 8-gram overlaps with the real benchmark files are found, clean rows pass."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from s1kit.data.decontaminate import NgramIndex, decontaminate, hits_by_source, load_benchmark_jsonl, load_benchmarks
from s1kit.data.rows import normalize_text, words

BENCH_DIR = Path(__file__).resolve().parents[3] / "shared/data/benchmarks"
BENCH_FIELDS = {"math500": "problem", "aime24": "problem", "aime25": "problem", "amc23": "question"}

needs_benchmarks = pytest.mark.skipif(
    not all((BENCH_DIR / f"{name}.jsonl").exists() for name in BENCH_FIELDS),
    reason=f"benchmark files not found under {BENCH_DIR}")

# Words that read like math text but, shuffled, never form a benchmark 8-gram.
FILLER = ("let the a of in is be find number integer positive sum value real such that where each "
          "triangle circle point line side angle area square prime digit function polynomial root "
          "equal greater less than two three four five given what how many if and or").split()


def make_row(i: int, question: str, source: str = "synthetic") -> dict:
    return {"id": f"r{i}", "question": question, "solution": "", "answer": None, "source": source,
            "cot_type": "math", "metadata": {}}


def clean_question(rng: random.Random, length: int = 40) -> str:
    return " ".join(rng.choices(FILLER, k=length)) + "?"


@pytest.fixture(scope="module")
def benchmarks() -> dict[str, list[str]]:
    return load_benchmarks(BENCH_DIR)


@needs_benchmarks
def test_loaders_read_each_file_with_its_field(benchmarks):
    for name, fld in BENCH_FIELDS.items():
        texts = load_benchmark_jsonl(BENCH_DIR / f"{name}.jsonl", field=fld)
        assert texts == benchmarks[name] and len(texts) >= 29
    assert len(benchmarks["math500"]) == 500


@needs_benchmarks
def test_planted_ngrams_are_found_with_benchmark_and_index(benchmarks):
    rng = random.Random(0)
    index = NgramIndex.build(benchmarks, n=8)
    rows, planted = [], {}
    for name, texts in sorted(benchmarks.items()):
        for idx in rng.sample(range(len(texts)), 5):
            toks = words(texts[idx])
            start = rng.randrange(len(toks) - 8 + 1)
            gram = toks[start:start + 8]
            # Formatting noise the normaliser must see through: case, spacing, LaTeX spacing.
            noisy = "  ".join(w.upper() if k % 2 else w for k, w in enumerate(gram)).replace(" ", r" \, ", 1)
            row = make_row(len(rows), f"{clean_question(rng, 15)} {noisy} {clean_question(rng, 15)}", source=name)
            rows.append(row)
            planted[row["id"]] = (name, idx, " ".join(gram))
    clean = [make_row(1000 + i, clean_question(rng)) for i in range(200)]
    kept, log = decontaminate(rows + clean, index, n=8)
    assert [r["id"] for r in kept] == [r["id"] for r in clean]
    assert len(log) == len(rows) and log.counts() == {"contaminated": len(rows)}
    for drop in log.drops:
        name, idx, gram = planted[drop.id]
        refs = dict(index.matches(gram))[gram]
        assert (name, idx) in refs  # the planted source is among the rows holding that n-gram
        assert (drop.detail["benchmark"], drop.detail["benchmark_index"]) in refs
        assert drop.detail["ngram"] == gram
        assert gram in " ".join(words(benchmarks[drop.detail["benchmark"]][drop.detail["benchmark_index"]]))
    report = hits_by_source(log)
    assert sorted(report) == sorted(benchmarks)
    assert all(len(hits) == 5 for hits in report.values())


@needs_benchmarks
def test_no_false_hits_on_clean_rows(benchmarks):
    rng = random.Random(1)
    clean = [make_row(i, clean_question(rng, rng.randint(10, 80))) for i in range(2000)]
    clean.append(make_row(9999, "Alice has 3 apples and Bob has 7 pears; how many fruits do they have in total?"))
    kept, log = decontaminate(clean, benchmarks, n=8)
    assert len(kept) == len(clean) and len(log) == 0


@needs_benchmarks
def test_whole_benchmark_problem_is_contaminated(benchmarks):
    rows = [make_row(i, text, source="copy") for i, text in enumerate(benchmarks["aime25"])]
    kept, log = decontaminate(rows, benchmarks)
    assert kept == [] and len(log) == len(rows)
    assert all(d.detail["matching_ngrams"] >= 1 for d in log.drops)


def test_n_is_configurable_and_must_match_a_prebuilt_index():
    bench = {"toy": ["one two three four five six seven eight nine ten"]}
    row = make_row(0, "zero one two three four five six seven eight")
    assert len(decontaminate([row], bench, n=8)[1]) == 1
    assert len(decontaminate([row], bench, n=9)[1]) == 0
    with pytest.raises(ValueError, match="n=9 but the prebuilt index uses n=8"):
        decontaminate([row], NgramIndex.build(bench, n=8), n=9)


def test_short_benchmark_problem_matches_whole_question_only():
    bench = {"toy": ["What is 2+2?"]}
    kept, log = decontaminate([make_row(0, "what is 2 + 2"), make_row(1, "what is 2+2 times seven")], bench)
    assert [d.id for d in log.drops] == ["r0"] and [r["id"] for r in kept] == ["r1"]


def test_loader_errors_name_the_file_and_record(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"problem": "ok"}) + "\n" + json.dumps({"text": "no field"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl: record 2 has no 'problem or question'"):
        load_benchmark_jsonl(path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no \\*.jsonl benchmark files"):
        load_benchmarks(empty)


def test_normalize_text_strips_latex_spacing_and_case():
    assert normalize_text("  Find\\,  $X$\\quad NOW~please ") == "find $x$ now please"


@needs_benchmarks
def test_sixty_thousand_questions_in_seconds(benchmarks):
    rng = random.Random(2)
    rows = [make_row(i, clean_question(rng, 60)) for i in range(60_000)]
    index = NgramIndex.build(benchmarks)
    start = time.perf_counter()
    kept, _ = decontaminate(rows, index)
    # Generous bound: the CPU is shared in CI; the bench reports the real figure.
    assert time.perf_counter() - start < 30 and len(kept) == len(rows)
