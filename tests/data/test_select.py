"""s1K selection: deterministic under a seed, matches hand-computed cases and Algorithm 1; ablations."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s1kit.data.select import METHODS, AutoInclude, select


def make_row(i: int, domain: str, tokens: int, source: str = "olympiads", correct: bool = False) -> dict:
    return {"id": f"r{i}", "question": f"q{i}", "solution": "", "answer": None, "source": source,
            "cot_type": "math", "metadata": {}, "domain": domain, "trace_tokens": tokens,
            "teacher_correct": correct}


def pool(n_rows: int = 300, n_domains: int = 12, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [make_row(i, f"d{rng.randrange(n_domains)}", rng.randrange(100, 30000)) for i in range(n_rows)]


def ids(rows: list[dict]) -> list[str]:
    return [r["id"] for r in rows]


def test_same_seed_same_selection_different_seed_differs():
    rows = pool()
    a, log_a = select(rows, n=50, seed=7)
    b, _ = select(rows, n=50, seed=7)
    c, _ = select(rows, n=50, seed=8)
    assert ids(a) == ids(b) and ids(a) != ids(c)
    assert len(a) == 50 and len(log_a) == 250 and log_a.counts() == {"not_selected": 250}
    assert all(r["selected_by"] == "domain_draw" for r in a)


def test_one_candidate_per_domain_selects_all():
    rows = [make_row(i, f"d{i}", 1000 + i) for i in range(5)]
    selected, log = select(rows, n=5, seed=0)
    assert sorted(ids(selected)) == ids(rows) and len(log) == 0


def test_first_draw_weights_are_two_to_the_minus_rank():
    # One domain, lengths 300 > 200 > 100: ranks 0, 1, 2 -> weights 1, 1/2, 1/4 -> 4/7, 2/7, 1/7.
    rows = [make_row(0, "d", 200), make_row(1, "d", 100), make_row(2, "d", 300)]
    trials = 7000
    counts = Counter(select(rows, n=1, seed=s)[0][0]["id"] for s in range(trials))
    for rid, p in {"r2": 4 / 7, "r0": 2 / 7, "r1": 1 / 7}.items():
        assert abs(counts[rid] / trials - p) < 0.025, (rid, counts)


def test_half_life_spreads_the_length_preference():
    # half_life 2: weights 2**(-r/2) for ranks 0, 1, 2 -> 1, 0.707, 0.5
    rows = [make_row(0, "d", 200), make_row(1, "d", 100), make_row(2, "d", 300)]
    trials = 7000
    counts = Counter(select(rows, n=1, seed=s, half_life=2.0)[0][0]["id"] for s in range(trials))
    total = 1 + 2 ** -0.5 + 0.5
    for rid, w in {"r2": 1, "r0": 2 ** -0.5, "r1": 0.5}.items():
        assert abs(counts[rid] / trials - w / total) < 0.025, (rid, counts)
    long_pool = [make_row(i, "d", 10_000 - i) for i in range(3000)]
    picked = [int(r["id"][1:]) for r in select(long_pool, n=300, seed=0, half_life=500.0)[0]]
    assert max(picked) > 1000 and sorted(picked) != list(range(300))  # not only the longest 300
    with pytest.raises(ValueError, match="half_life"):
        select(rows, n=1, half_life=0)


def test_domain_is_drawn_uniformly_not_by_size():
    rows = [make_row(0, "small", 10)] + [make_row(i, "big", 10 * i) for i in range(1, 50)]
    trials = 4000
    small = sum(select(rows, n=1, seed=s)[0][0]["domain"] == "small" for s in range(trials))
    assert abs(small / trials - 0.5) < 0.03


def reference_algorithm_1(rows: list[dict], n: int, seed: int) -> list[str]:
    """Algorithm 1 of the s1 paper written out literally with random.choices and a weight list."""
    rng = random.Random(seed)
    selected = [r["id"] for r in rows if AutoInclude()(r)]
    by_domain: dict[str, list[dict]] = {}
    for r in rows:
        if r["id"] not in selected:
            by_domain.setdefault(r["domain"], []).append(r)
    while len(selected) < n and by_domain:
        d = rng.choice(sorted(by_domain))
        qd = sorted(by_domain[d], key=lambda r: -r["trace_tokens"])
        q = rng.choices(qd, weights=[2 ** -rank for rank in range(len(qd))])[0]
        selected.append(q["id"])
        by_domain[d] = [r for r in by_domain[d] if r is not q]
        if not by_domain[d]:
            del by_domain[d]
    return selected


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_a_literal_algorithm_1(seed):
    rows = pool(400, 20, seed)
    rows[3].update(source="qq8933/AIME_1983_2024", teacher_correct=True)
    rows[4].update(source="qfq/openaimath/Algebra", teacher_correct=True, trace_tokens=9000)
    # 2,000 rows in one domain: ranks past 1,074 have weight 0.0 in floats; the result must not change.
    rows += [make_row(1000 + i, "huge", i) for i in range(2000)]
    assert ids(select(rows, n=120, seed=seed)[0]) == reference_algorithm_1(rows, 120, seed)


def test_auto_include_predicate():
    auto = AutoInclude()
    assert auto(make_row(0, "d", 10, "qq8933/AIME_1983_2024", True))
    assert auto(make_row(0, "d", 10, "Idavidrein/gpqa", True))
    assert not auto(make_row(0, "d", 10, "Idavidrein/gpqa", False))
    assert auto(make_row(0, "d", 5601, "qfq/openaimath/Geometry", True))
    assert not auto(make_row(0, "d", 5600, "qfq/openaimath/Geometry", True))
    assert not auto(make_row(0, "d", 9000, "AI-MO/NuminaMath-CoT/olympiads", True))  # not MATH
    assert AutoInclude(min_tokens=100)(make_row(0, "d", 101, "hendrycks_math", True))


def test_auto_included_rows_come_first_and_count_towards_n():
    rows = pool(100, 5)
    rows[10].update(source="aime", teacher_correct=True)
    rows[20].update(source="gpqa", teacher_correct=True)
    selected, _ = select(rows, n=10, seed=0)
    assert ids(selected)[:2] == ["r10", "r20"] and len(selected) == 10
    assert [r["selected_by"] for r in selected[:3]] == ["auto_include", "auto_include", "domain_draw"]
    assert ids(select(rows, n=10, seed=0, auto_include=lambda r: False)[0])[:2] != ["r10", "r20"]


def test_rows_without_a_teacher_verdict_are_reported(caplog):
    rows = pool(20)
    for r in rows[:3]:
        del r["teacher_correct"]
    select(rows, n=5, seed=0)
    assert "3 of 20 rows have no 'teacher_correct'" in caplog.text


def test_random_method():
    rows = pool()
    a = select(rows, n=40, seed=1, method="random")[0]
    assert ids(a) == ids(select(rows, n=40, seed=1, method="random")[0])
    assert len(set(ids(a))) == 40 and all(r["selected_by"] == "random" for r in a)


def test_diverse_method_is_uniform_within_a_domain():
    rows = [make_row(0, "d", 300), make_row(1, "d", 200), make_row(2, "d", 100)]
    counts = Counter(select(rows, n=1, seed=s, method="diverse")[0][0]["id"] for s in range(3000))
    assert all(abs(c / 3000 - 1 / 3) < 0.04 for c in counts.values()) and len(counts) == 3


def test_longest_method_takes_the_top_n():
    rows = pool()
    top = sorted(rows, key=lambda r: -r["trace_tokens"])[:25]
    assert ids(select(rows, n=25, method="longest")[0]) == ids(top)


def test_full_method_keeps_everything():
    rows = pool(50)
    selected, log = select(rows, n=10, method="full")
    assert ids(selected) == ids(rows) and len(log) == 0


@pytest.mark.parametrize("method", METHODS)
def test_every_method_accounts_for_every_row(method):
    rows = pool(120)
    selected, log = select(rows, n=30, seed=3, method=method)
    assert sorted(ids(selected) + log.ids()) == sorted(ids(rows))


def test_fewer_candidates_than_n_selects_all_and_says_so(caplog):
    rows = pool(8)
    selected, _ = select(rows, n=20, seed=0)
    assert len(selected) == 8 and "fewer than n=20" in caplog.text


def test_errors_are_explicit():
    rows = pool(10)
    with pytest.raises(ValueError, match="method"):
        select(rows, method="best")
    del rows[0]["domain"]
    with pytest.raises(ValueError, match="needs 'domain' on every row"):
        select(rows, n=3)
    assert len(select(rows, n=3, method="longest")[0]) == 3  # longest does not read domains
    dup = pool(3) + pool(3)
    with pytest.raises(ValueError, match="unique row ids"):
        select(dup, n=2)


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 10_000), st.booleans()), max_size=40),
       n=st.integers(0, 50), seed=st.integers(0, 2**32), method=st.sampled_from(METHODS))
def test_selection_invariants(lengths, n, seed, method):
    rows = [make_row(i, f"d{d}", t, "aime" if aime else "olympiads", aime) for i, (d, t, aime) in enumerate(lengths)]
    selected, log = select(rows, n=n, seed=seed, method=method)
    chosen = ids(selected)
    assert len(set(chosen)) == len(chosen) and sorted(chosen + log.ids()) == sorted(ids(rows))
    auto = [r["id"] for r in rows if r["source"] == "aime"]
    if method == "full":
        assert chosen == ids(rows)
    elif method == "s1k":
        assert chosen[:len(auto)] == auto and len(chosen) == max(len(auto), min(n, len(rows)))
    else:
        assert len(chosen) == min(n, len(rows))
