"""The s1K selection (s1 paper, Algorithm 1) and its ablations.

    selected, log = select(rows, n=1000, seed=0, method="s1k")

``method="s1k"``: (a) auto-include every row the :class:`AutoInclude` predicate accepts
(teacher-correct AIME/GPQA rows, and teacher-correct MATH rows whose trace is longer than 5,600
tokens); (b) until ``n`` rows are selected: draw a domain uniformly among domains that still have
candidates, rank that domain's candidates by ``trace_tokens`` (longest = rank 0), pick one with
weight ``2**-rank`` and remove it. All randomness comes from one ``random.Random(seed)``.
``half_life`` (default 1, s1's weights) generalises the weight to ``2**(-rank / half_life)``: a
pool whose trace lengths are set by problem size alone (the synthetic embedded default) keeps a
length distribution with a half-life of hundreds of ranks instead of only its longest problems.

Ablations (s1 paper section 5.1): ``random`` (uniform over all rows), ``diverse`` (uniform domain,
then uniform within it), ``longest`` (the ``n`` longest traces), ``full`` (every row).
Only ``s1k`` auto-includes. Unselected rows are logged with reason ``not_selected``.
"""

from __future__ import annotations

import itertools
import logging
import random
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from s1kit.data.rows import DropLog, Row

logger = logging.getLogger(__name__)

METHODS = ("s1k", "random", "diverse", "longest", "full")
DEFAULT_N = 1000
# 2.0**-1075 is 0.0 in a double, so ranks past this carry no weight: cumulative weights for a
# pool of any size are a prefix of this table, exactly as random.choices would compute them.
_MAX_WEIGHTED_RANKS = 1075
_CUM_WEIGHTS = list(itertools.accumulate(2.0 ** -r for r in range(_MAX_WEIGHTED_RANKS)))


@dataclass(frozen=True)
class AutoInclude:
    """s1's auto-include predicate over row fields (source regexes are case-insensitive)."""

    correct_field: str = "teacher_correct"
    # Teacher-correct rows from these sources are always kept (s1: AIME and GPQA).
    always_sources: str = r"aime|gpqa"
    # Teacher-correct rows from these sources are kept when their trace is long (s1: MATH).
    long_sources: str = r"openaimath|hendrycks|(?:^|[/_-])math(?:$|[/_-])"
    min_tokens: int = 5600
    length_field: str = "trace_tokens"

    def __call__(self, row: Mapping[str, Any]) -> bool:
        if row.get(self.correct_field) is not True:
            return False
        source = str(row.get("source", ""))
        if re.search(self.always_sources, source, re.IGNORECASE):
            return True
        return bool(re.search(self.long_sources, source, re.IGNORECASE)) and row[self.length_field] > self.min_tokens


def select(rows: Iterable[Row], n: int = DEFAULT_N, seed: int = 0, method: str = "s1k",
           auto_include: Callable[[Mapping[str, Any]], bool] | None = None,
           domain_field: str = "domain", length_field: str = "trace_tokens",
           half_life: float = 1.0) -> tuple[list[Row], DropLog]:
    """Select ``n`` rows by ``method``; returns copies tagged ``selected_by`` and the drop log."""
    if not half_life > 0:
        raise ValueError(f"half_life: expected > 0, got {half_life}")
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    if n < 0:
        raise ValueError(f"n: expected >= 0, got {n}")
    rows = list(rows)
    _check_fields(rows, method, domain_field, length_field)
    _check_unique_ids(rows)
    rng = random.Random(seed)
    if method == "s1k":
        auto_include = auto_include or AutoInclude(length_field=length_field)
        picks = _select_s1k(rows, n, rng, auto_include, domain_field, length_field, half_life)
    elif method == "diverse":
        picks = _draw_by_domain(rows, list(range(len(rows))), n, rng, domain_field, _uniform_pick)
    elif method == "random":
        picks = [(i, "random") for i in rng.sample(range(len(rows)), min(n, len(rows)))]
    elif method == "longest":
        picks = [(i, "longest") for i in _by_length(rows, range(len(rows)), length_field)[:n]]
    else:
        picks = [(i, "full") for i in range(len(rows))]
    return _result(rows, picks, n, method)


def _check_fields(rows: Sequence[Row], method: str, domain_field: str, length_field: str) -> None:
    needed = {"s1k": (domain_field, length_field), "diverse": (domain_field,), "longest": (length_field,)}
    for name in needed.get(method, ()):
        bad = [r.get("id") for r in rows if name not in r or r[name] is None]
        if bad:
            raise ValueError(f"select(method={method!r}) needs {name!r} on every row; "
                             f"{len(bad)} rows lack it, e.g. {bad[:5]}")


def _check_unique_ids(rows: Sequence[Row]) -> None:
    seen: set[Any] = set()
    dupes = [r["id"] for r in rows if r["id"] in seen or seen.add(r["id"])]
    if dupes:
        raise ValueError(f"select needs unique row ids (run dedup first); duplicated: {dupes[:5]}")


def _select_s1k(rows: Sequence[Row], n: int, rng: random.Random, auto_include: Callable[[Mapping[str, Any]], bool],
                domain_field: str, length_field: str, half_life: float = 1.0) -> list[tuple[int, str]]:
    if isinstance(auto_include, AutoInclude):
        _warn_missing_correctness(rows, auto_include.correct_field)
    auto = [i for i, r in enumerate(rows) if auto_include(r)]
    if len(auto) > n:
        logger.warning("select: %d rows are auto-included, more than n=%d; all are kept (as in s1)", len(auto), n)
    auto_set = set(auto)
    # Auto-included rows leave the draw pools: the paper's S is a set, so drawing them again would
    # only waste a draw. This is the one place we differ from a literal reading of Algorithm 1.
    rest = _by_length(rows, (i for i in range(len(rows)) if i not in auto_set), length_field)
    picks = [(i, "auto_include") for i in auto]
    pick = _length_weighted_pick if half_life == 1.0 else _half_life_pick(half_life, len(rest))
    return picks + _draw_by_domain(rows, rest, n - len(picks), rng, domain_field, pick)


def _warn_missing_correctness(rows: Sequence[Row], correct_field: str) -> None:
    # A row without a teacher verdict cannot be auto-included; say how many, rather than guess.
    missing = sum(1 for r in rows if r.get(correct_field) is None)
    if missing:
        logger.warning("select: %d of %d rows have no %r; they are not auto-included", missing, len(rows),
                       correct_field)


def _by_length(rows: Sequence[Row], indices: Iterable[int], length_field: str) -> list[int]:
    """Indices longest trace first; ties keep input order."""
    return sorted(indices, key=lambda i: -rows[i][length_field])


def _draw_by_domain(rows: Sequence[Row], order: Sequence[int], k: int, rng: random.Random, domain_field: str,
                    pick: Callable[[random.Random, int], int]) -> list[tuple[int, str]]:
    """Draw ``k`` rows: a uniform domain among non-empty ones, then ``pick`` a position in it.

    Each domain's pool keeps the order of ``order``; removing a pick keeps it, so ranks stay right.
    """
    pools: dict[str, list[int]] = {}
    for i in order:
        pools.setdefault(rows[i][domain_field], []).append(i)
    picks: list[tuple[int, str]] = []
    while len(picks) < k and pools:
        domain = rng.choice(sorted(pools))  # sorted: the draw must not depend on dict order
        pool = pools[domain]
        picks.append((pool.pop(pick(rng, len(pool))), "domain_draw"))
        if not pool:
            del pools[domain]
    return picks


def _length_weighted_pick(rng: random.Random, size: int) -> int:
    """Rank r in [0, size) with probability proportional to 2**-r.

    Same random stream as ``rng.choices(pool, weights=[2**-r for r in range(size)])``, without
    building a weight list per draw; a one-element pool still consumes its draw, like that call.
    """
    ranks = min(size, _MAX_WEIGHTED_RANKS)
    return rng.choices(range(ranks), cum_weights=_CUM_WEIGHTS[:ranks])[0]


def _half_life_pick(half_life: float, size: int) -> Callable[[random.Random, int], int]:
    """Rank r with probability proportional to ``2**(-r / half_life)`` (one cumulative table)."""
    ranks = min(size, int(_MAX_WEIGHTED_RANKS * half_life))
    cum = list(itertools.accumulate(2.0 ** (-r / half_life) for r in range(max(ranks, 1))))

    def pick(rng: random.Random, pool_size: int) -> int:
        k = min(pool_size, len(cum))
        return rng.choices(range(k), cum_weights=cum[:k])[0]
    return pick


def _uniform_pick(rng: random.Random, size: int) -> int:
    return rng.randrange(size)


def _result(rows: Sequence[Row], picks: list[tuple[int, str]], n: int, method: str) -> tuple[list[Row], DropLog]:
    if method != "full" and len(picks) < n:
        logger.warning("select(method=%r): only %d candidates, fewer than n=%d", method, len(picks), n)
    chosen = {i for i, _ in picks}
    log = DropLog("select")
    for i, row in enumerate(rows):
        if i not in chosen:
            log.add(row, "not_selected", method=method)
    return [{**rows[i], "selected_by": how} for i, how in picks], log
