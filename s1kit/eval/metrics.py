"""Metrics over graded samples: accuracy, pass@k, maj@k, bootstrap CIs, s1's scaling metrics.

    from s1kit.eval.metrics import accuracy, pass_at_k, bootstrap_ci, control, scaling
    accuracy([True, False, True])                       # 0.667
    pass_at_k(n=16, c=3, k=4)                           # unbiased pass@4 of one problem
    bootstrap_ci(per_problem_scores).low                # 95% percentile CI over problems
    scaling([(1000, 0.30), (2000, 0.40), (4000, 0.45)]).per_1k_tokens

Accuracies are fractions in [0, 1] unless a caller passes percentages, in which case every
accuracy-valued result below is in percent (points) as well. Token counts are thinking tokens as
counted by the budget-forcing engine (model-generated only). numpy only: no torch here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

__all__ = [
    "Interval", "PairedDifference", "Scaling", "accuracy", "avg_at_n", "pass_at_k", "maj_at_k",
    "bootstrap_ci", "paired_bootstrap", "thinking_stats", "control", "scaling", "performance",
]

# Bootstrap resamples are drawn in blocks of this many rows so memory stays at
# block * n_problems indices however large n_boot is.
_BOOT_BLOCK = 1000


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval: ``mean`` in [``low``, ``high``]."""

    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class PairedDifference:
    """Mean per-problem difference a - b, its CI, and a two-sided bootstrap p-value for 0."""

    mean_diff: float
    low: float
    high: float
    p_value: float


@dataclass(frozen=True)
class Scaling:
    """s1's Scaling metric: mean slope of accuracy over thinking tokens across budget pairs.

    ``per_token`` is in accuracy units per thinking token (fractions -> fraction per token;
    percentages -> percentage points per token); ``per_1k_tokens`` is the same times 1000.
    """

    per_token: float
    per_1k_tokens: float
    n_pairs: int


def accuracy(correct: Sequence[bool]) -> float:
    """``accuracy([True, False])`` -> 0.5: the share of correct samples."""
    values = _nonempty_array(correct, "correct")
    return float(values.mean())


def avg_at_n(correct_per_problem: Sequence[Sequence[bool]]) -> float:
    """``avg_at_n([[1, 0], [1, 1, 1, 0]])`` -> 0.625: mean over problems of each one's accuracy.

    avg@n = (1/P) sum_p (c_p / n_p), where problem p has n_p samples of which c_p are correct;
    problems may have different n_p. With one sample per problem it is plain accuracy.
    """
    if len(correct_per_problem) == 0:
        raise ValueError("avg_at_n needs at least one problem")
    return float(np.mean([accuracy(samples) for samples in correct_per_problem]))


def pass_at_k(n: int, c: int, k: int) -> float:
    """``pass_at_k(n=10, c=2, k=3)`` -> 0.533: unbiased pass@k of one problem (Chen et al. 2021).

    pass@k = 1 - C(n-c, k) / C(n, k): the chance that k samples drawn without replacement from
    n (c of them correct) contain a correct one. Computed as the product
    1 - prod_{i=n-c+1}^{n} (1 - k/i), which never forms the huge binomials.
    """
    if not (isinstance(n, int) and isinstance(c, int) and isinstance(k, int)):
        raise TypeError(f"n, c, k must be ints, got {n!r}, {c!r}, {k!r}")
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0  # every draw of k samples includes a correct one
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def maj_at_k(answers: Sequence[str | None], gold: str,
             equal_fn: Callable[[str, str], bool]) -> bool:
    """``maj_at_k(["0.5", "\\frac12", "1"], "1/2", same)`` -> True: is the majority answer right?

    Answers are clustered by ``equal_fn(answer, representative)`` (a grader equivalence, so
    ``\\frac12`` and ``0.5`` are one vote), each joining the first cluster it equals; None
    (unparsable) answers do not vote. The largest cluster wins, ties going to the cluster formed
    first; the result is ``equal_fn(winner, gold)``. No votes -> False. k is ``len(answers)``.
    """
    clusters = _cluster(answers, equal_fn)
    if not clusters:
        return False
    winner = max(clusters, key=len)  # max keeps the first of equal sizes: earliest cluster
    return bool(equal_fn(winner[0], gold))


def _cluster(answers: Iterable[str | None], equal_fn: Callable[[str, str], bool]) -> list[list[str]]:
    clusters: list[list[str]] = []
    for answer in answers:
        if answer is None:
            continue
        home = next((cluster for cluster in clusters if equal_fn(answer, cluster[0])), None)
        if home is None:
            clusters.append([answer])
        else:
            home.append(answer)
    return clusters


def bootstrap_ci(per_problem_scores: Sequence[float], n_boot: int = 10000, alpha: float = 0.05,
                 seed: int = 0) -> Interval:
    """``bootstrap_ci(scores)`` -> ``Interval(mean, low, high)``: percentile bootstrap over problems.

    Resamples problems with replacement ``n_boot`` times; low/high are the alpha/2 and
    1 - alpha/2 quantiles of the resampled means. Same inputs and seed -> same interval.
    """
    scores = _nonempty_array(per_problem_scores, "per_problem_scores")
    means = _bootstrap_means(scores, n_boot, seed)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return Interval(float(scores.mean()), float(low), float(high))


def paired_bootstrap(scores_a: Sequence[float], scores_b: Sequence[float], n_boot: int = 10000,
                     alpha: float = 0.05, seed: int = 0) -> PairedDifference:
    """``paired_bootstrap(a, b)`` -> ``PairedDifference(mean_diff, low, high, p_value)``.

    Scores are per problem, the same problems in the same order. Resamples problems (the same
    draw for a and b) and bootstraps the mean of d = a - b. p-value (two-sided, for "no
    difference"): 2 * min(share of resampled means <= 0, share >= 0), each share counted as
    (1 + hits) / (1 + n_boot) so it is never 0, capped at 1.
    """
    a = _nonempty_array(scores_a, "scores_a")
    b = _nonempty_array(scores_b, "scores_b")
    if a.shape != b.shape:
        raise ValueError(f"paired scores need equal lengths, got {a.shape[0]} and {b.shape[0]}")
    diffs = a - b
    means = _bootstrap_means(diffs, n_boot, seed)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    at_most_zero = (1 + np.count_nonzero(means <= 0)) / (1 + n_boot)
    at_least_zero = (1 + np.count_nonzero(means >= 0)) / (1 + n_boot)
    p_value = min(1.0, 2 * min(at_most_zero, at_least_zero))
    return PairedDifference(float(diffs.mean()), float(low), float(high), float(p_value))


def _bootstrap_means(values: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    blocks = []
    for start in range(0, n_boot, _BOOT_BLOCK):
        rows = min(_BOOT_BLOCK, n_boot - start)
        picks = rng.integers(0, values.shape[0], size=(rows, values.shape[0]))
        blocks.append(values[picks].mean(axis=1))
    return np.concatenate(blocks)


def thinking_stats(rows: Sequence[Mapping[str, object]]) -> dict[str, float]:
    """``thinking_stats(generation_rows)`` -> dict of thinking-length statistics.

    Reads each row's ``thinking_tokens``, ``forced_end`` and ``waits_injected`` (the generation
    row format); a row without them raises KeyError. Returns ``n``, ``mean_thinking_tokens``,
    ``median_thinking_tokens``, ``max_thinking_tokens`` (tokens), ``forced_end_share`` (share of
    rows whose thinking was ended by the budget cap) and ``mean_waits`` (ignore strings per row).
    """
    if len(rows) == 0:
        raise ValueError("thinking_stats needs at least one row")
    tokens = np.array([row["thinking_tokens"] for row in rows], dtype=float)
    forced = np.array([bool(row["forced_end"]) for row in rows])
    waits = np.array([row["waits_injected"] for row in rows], dtype=float)
    return {
        "n": len(rows),
        "mean_thinking_tokens": float(tokens.mean()),
        "median_thinking_tokens": float(np.median(tokens)),
        "max_thinking_tokens": float(tokens.max()),
        "forced_end_share": float(forced.mean()),
        "mean_waits": float(waits.mean()),
    }


def control(thinking_tokens_per_run: Sequence[float], a_min: float | None,
            a_max: float | None) -> float:
    """``control([900, 1100, 2500], 0, 2048)`` -> 0.667: s1's Control metric.

    Control = (1/|A|) sum_{a in A} 1[a_min <= a <= a_max], the share of runs whose thinking
    tokens stay within the budget bounds (inclusive). None leaves a bound open.
    """
    tokens = _nonempty_array(thinking_tokens_per_run, "thinking_tokens_per_run")
    if a_min is not None and a_max is not None and a_min > a_max:
        raise ValueError(f"a_min ({a_min}) must not exceed a_max ({a_max})")
    inside = np.ones(tokens.shape, dtype=bool)
    if a_min is not None:
        inside &= tokens >= a_min
    if a_max is not None:
        inside &= tokens <= a_max
    return float(inside.mean())


def scaling(points: Sequence[tuple[float, float]]) -> Scaling:
    """``scaling([(tokens, accuracy), ...])`` -> ``Scaling``: s1's Scaling metric.

    Each point is one budget setting: (average thinking tokens, accuracy). Scaling =
    (1/C(|A|,2)) sum over pairs a, b with tokens_a < tokens_b of
    (acc_b - acc_a) / (tokens_b - tokens_a), the mean slope: accuracy units per thinking token
    (see :class:`Scaling`; ``per_1k_tokens`` is friendlier to read). Needs two or more points
    with distinct token counts, since a slope between equal counts is undefined.
    """
    if len(points) < 2:
        raise ValueError(f"scaling needs at least two points, got {len(points)}")
    tokens = [float(point[0]) for point in points]
    if len(set(tokens)) != len(tokens):
        raise ValueError(f"scaling needs distinct thinking-token counts, got {tokens}")
    slopes = [(acc_b - acc_a) / (tok_b - tok_a)
              for (tok_a, acc_a), (tok_b, acc_b) in combinations(sorted(points), 2)]
    per_token = float(np.mean(slopes))
    return Scaling(per_token=per_token, per_1k_tokens=per_token * 1000, n_pairs=len(slopes))


def performance(points: Sequence[tuple[float, float]]) -> float:
    """``performance([(tokens, accuracy), ...])`` -> the best accuracy: s1's Performance metric."""
    if len(points) == 0:
        raise ValueError("performance needs at least one point")
    return float(max(point[1] for point in points))


def _nonempty_array(values: Iterable[float], name: str) -> np.ndarray:
    array = np.asarray(list(values), dtype=float)
    if array.ndim != 1 or array.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty flat sequence, got shape {array.shape}")
    return array


