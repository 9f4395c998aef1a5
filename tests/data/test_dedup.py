"""Dedup: exact duplicates after normalisation and MinHash near duplicates are dropped, deterministically."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

pytest.importorskip("datasketch", reason="near dedup needs datasketch: pip install 's1kit[data]'")

from s1kit.data.dedup import dedup, exact_dedup, near_dedup, shingles  # noqa: E402

VOCAB = [f"w{i}" for i in range(3000)]


def make_row(i: int, question: str) -> dict:
    return {"id": f"r{i}", "question": question, "solution": "", "answer": None, "source": "s",
            "cot_type": "math", "metadata": {}}


def random_question(rng: random.Random, length: int = 100) -> str:
    return " ".join(rng.choices(VOCAB, k=length))


def change_words(rng: random.Random, question: str, k: int) -> str:
    toks = question.split()
    for pos in rng.sample(range(len(toks)), k):
        toks[pos] = "changed" + str(pos)
    return " ".join(toks)


def test_exact_dedup_keeps_first_and_names_it():
    rows = [make_row(0, "Find  X."), make_row(1, "find x."), make_row(2, "Find\\, x."), make_row(3, "Find y.")]
    kept, log = exact_dedup(rows)
    assert [r["id"] for r in kept] == ["r0", "r3"]
    assert [(d.id, d.reason, d.detail["kept_id"]) for d in log.drops] == [
        ("r1", "duplicate_exact", "r0"), ("r2", "duplicate_exact", "r0")]


def test_near_dedup_finds_planted_near_duplicates_and_keeps_distinct():
    rng = random.Random(0)
    originals = [random_question(rng) for _ in range(300)]
    rows = [make_row(i, q) for i, q in enumerate(originals)]
    planted = {}
    for j, src in enumerate(rng.sample(range(len(originals)), 30)):
        row = make_row(1000 + j, change_words(rng, originals[src], 2))
        rows.append(row)
        planted[row["id"]] = f"r{src}"
    kept, log = near_dedup(rows, threshold=0.8)
    assert {d.id: d.detail["kept_id"] for d in log.drops} == planted
    assert all(d.reason == "duplicate_near" and d.detail["similarity"] >= 0.8 for d in log.drops)
    assert [r["id"] for r in kept] == [f"r{i}" for i in range(300)]


def test_threshold_is_configurable():
    rng = random.Random(1)
    base = random_question(rng, 60)
    rows = [make_row(0, base), make_row(1, change_words(rng, base, 6))]  # Jaccard about 0.55
    assert len(near_dedup(rows, threshold=0.9)[1]) == 0
    assert len(near_dedup(rows, threshold=0.3)[1]) == 1
    with pytest.raises(ValueError, match="threshold"):
        near_dedup(rows, threshold=0.0)


def test_dedup_runs_both_passes_in_one_log():
    rng = random.Random(2)
    q = random_question(rng)
    rows = [make_row(0, q), make_row(1, q.upper()), make_row(2, change_words(rng, q, 1)),
            make_row(3, random_question(rng))]
    kept, log = dedup(rows)
    assert [r["id"] for r in kept] == ["r0", "r3"]
    assert log.stage == "dedup" and log.counts() == {"duplicate_exact": 1, "duplicate_near": 1}


def test_short_texts_are_one_shingle():
    assert shingles("Hi there") == {b"hi there"}
    assert shingles("a b c d") == {b"a b c", b"b c d"}


_CHILD = """
import json, random, sys
sys.path.insert(0, {tests!r})
from test_dedup import make_row, random_question, change_words
from s1kit.data.dedup import near_dedup
rng = random.Random(3)
qs = [random_question(rng, 40) for _ in range(200)]
rows = [make_row(i, q) for i, q in enumerate(qs)]
rows += [make_row(500 + i, change_words(rng, qs[i], 1)) for i in range(0, 200, 7)]
kept, log = near_dedup(rows, threshold=0.7)
print(json.dumps([(d.id, d.detail["kept_id"], d.detail["similarity"]) for d in log.drops]))
"""


def test_deterministic_across_hash_seeds():
    code = _CHILD.format(tests=os.path.dirname(__file__))
    outs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")]
    assert outs[0] == outs[1] and len(json.loads(outs[0])) > 0


def test_missing_datasketch_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasketch", None)  # makes `import datasketch` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 's1kit\[data\]'"):
        near_dedup([make_row(0, "a b c")])
