import math

import pytest

from s1kit.eval.metrics import (
    accuracy, avg_at_n, bootstrap_ci, control, maj_at_k, paired_bootstrap, pass_at_k,
    performance, scaling, thinking_stats,
)


# --- accuracy, avg@n, pass@k ----------------------------------------------------------------

def test_accuracy_and_avg_at_n():
    assert accuracy([True, False, True, True]) == 0.75
    assert avg_at_n([[1, 0], [1, 1, 1, 0]]) == pytest.approx((0.5 + 0.75) / 2)
    assert avg_at_n([[True], [False], [True]]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        accuracy([])
    with pytest.raises(ValueError):
        avg_at_n([])


def test_pass_at_k_matches_the_combinatorial_formula():
    for n in range(1, 41):
        for c in range(n + 1):
            for k in range(1, n + 1):
                expected = 1 - math.comb(n - c, k) / math.comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12), (n, c, k)


def test_pass_at_k_edges_and_large_n():
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(10, 6, 5) == 1.0  # fewer than k wrong samples
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)  # pass@1 = c / n
    expected = 1 - math.comb(1000 - 7, 100) / math.comb(1000, 100)
    assert pass_at_k(1000, 7, 100) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n, c, k", [(5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6)])
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


# --- maj@k ----------------------------------------------------------------------------------

def test_maj_at_k_clusters_by_grader_equivalence():
    pytest.importorskip("math_verify", reason="needs: pip install 's1kit[eval]'")
    from s1kit.eval.grade import grade_answer

    def same(answer, reference):
        return grade_answer(answer, reference).correct

    answers = ["1", "0.5", r"\frac12", r"\frac{1}{2}", None, None]
    assert maj_at_k(answers, "1/2", same)
    # with string equality every answer is its own vote and the tie goes to the first, "1"
    assert not maj_at_k(answers, "1/2", lambda a, b: a == b)


def test_maj_at_k_ties_unparsable_and_wrong_majority():
    def same(a, b):
        return a == b

    assert maj_at_k(["2", "3", "3", "2"], "2", same)  # tie: the cluster formed first wins
    assert not maj_at_k([None, None], "2", same)
    assert not maj_at_k(["3", "3", "2"], "2", same)


# --- bootstrap ------------------------------------------------------------------------------

def test_bootstrap_ci_contains_the_mean_and_is_seeded():
    scores = [1, 0, 1, 1, 0, 1, 0, 1, 1, 1, 0.5, 0.25]
    ci = bootstrap_ci(scores, n_boot=2000, seed=3)
    assert ci.low <= ci.mean <= ci.high
    assert ci.mean == pytest.approx(sum(scores) / len(scores))
    assert 0 < ci.high - ci.low < 1
    assert bootstrap_ci(scores, n_boot=2000, seed=3) == ci
    assert bootstrap_ci([0.4] * 10) == bootstrap_ci([0.4] * 10, seed=9)
    constant = bootstrap_ci([0.4] * 10)
    assert constant.low == pytest.approx(0.4) and constant.high == pytest.approx(0.4)


def test_bootstrap_ci_narrows_with_more_problems():
    small = bootstrap_ci([1, 0] * 10, n_boot=2000)
    large = bootstrap_ci([1, 0] * 500, n_boot=2000)
    assert large.high - large.low < small.high - small.low


def test_paired_bootstrap():
    same = paired_bootstrap([1, 0, 1, 0], [1, 0, 1, 0], n_boot=500)
    assert (same.mean_diff, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    better = paired_bootstrap([1] * 30 + [0] * 10, [0] * 30 + [0] * 10, n_boot=2000)
    assert better.mean_diff == pytest.approx(0.75)
    assert 0 < better.low <= better.mean_diff <= better.high
    assert better.p_value < 0.01
    assert paired_bootstrap([1, 0, 1], [0, 1, 1], seed=1) == paired_bootstrap([1, 0, 1], [0, 1, 1], seed=1)
    with pytest.raises(ValueError):
        paired_bootstrap([1, 0], [1, 0, 1])


# --- thinking stats and the s1 metrics ------------------------------------------------------

def test_thinking_stats():
    rows = [
        {"thinking_tokens": 100, "forced_end": False, "waits_injected": 0},
        {"thinking_tokens": 300, "forced_end": True, "waits_injected": 2},
        {"thinking_tokens": 200, "forced_end": False, "waits_injected": 1},
        {"thinking_tokens": 1000, "forced_end": True, "waits_injected": 1},
    ]
    assert thinking_stats(rows) == {
        "n": 4, "mean_thinking_tokens": 400.0, "median_thinking_tokens": 250.0,
        "max_thinking_tokens": 1000.0, "forced_end_share": 0.5, "mean_waits": 1.0,
    }
    with pytest.raises(KeyError):
        thinking_stats([{"thinking_tokens": 1}])


def test_control_on_a_hand_example():
    runs = [900, 1100, 2500, 2048, 100]
    assert control(runs, 1000, 2048) == pytest.approx(2 / 5)  # bounds are inclusive
    assert control(runs, None, 2048) == pytest.approx(4 / 5)
    assert control(runs, 1000, None) == pytest.approx(3 / 5)
    with pytest.raises(ValueError):
        control(runs, 10, 5)


def test_scaling_and_performance_on_a_hand_example():
    points = [(2000, 0.40), (1000, 0.30), (4000, 0.45)]  # order does not matter
    # pairs: (1000->2000) 0.10/1000, (1000->4000) 0.15/3000, (2000->4000) 0.05/2000
    expected = (0.10 / 1000 + 0.15 / 3000 + 0.05 / 2000) / 3
    result = scaling(points)
    assert result.per_token == pytest.approx(expected)
    assert result.per_1k_tokens == pytest.approx(expected * 1000)
    assert result.n_pairs == 3
    assert performance(points) == 0.45
    # a budget that hurts accuracy gives a negative slope
    assert scaling([(1000, 0.5), (2000, 0.4)]).per_1k_tokens == pytest.approx(-0.1)


@pytest.mark.parametrize("points", [[(1000, 0.3)], [(1000, 0.3), (1000, 0.4)]])
def test_scaling_needs_two_distinct_budgets(points):
    with pytest.raises(ValueError):
        scaling(points)
