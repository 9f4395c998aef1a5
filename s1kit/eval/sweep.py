"""Budget sweeps from one run: every (thinking cap, Waits) point branches off the longest run.

    points = sweep(backend, prompt_ids, budgets=[512, 1024, 2048, 4096], waits=[0, 1, 2],
                   policy=BudgetPolicy(max_answer_tokens=512))
    points[SweepPoint(budget=1024, waits=1)]   # -> one SequenceResult per prompt

s1 re-ran the whole evaluation for every point. With greedy decoding a run with a smaller cap or
fewer 'Wait's is the same as the longest run up to the point where its own thinking closes: the
machine's decisions depend only on the tokens it sees. So the longest run (largest cap, most
Waits) is generated once, keeping each sequence's KV cache; each point replays that run's tokens
through a machine with its own policy to find its branch point, and only the forced close and
the answer are decoded there, batched, on a copy of the cached prefix. Points that branch at the
same place in the same state (larger caps when the thinking ended naturally before all of them)
share one decode. Every point equals an independent greedy run token for token (tested).
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

from s1kit.forcing import BudgetPolicy, ConfigError, SequenceResult
from s1kit.forcing.sweep import SweepPoint, SweepStats

__all__ = ["SweepPoint", "SweepStats", "sweep"]

log = logging.getLogger(__name__)


def sweep(backend, prompts: Sequence[Sequence[int]], budgets: Sequence[int], waits: Sequence[int],
          policy: BudgetPolicy, keys: Sequence[str] | None = None,
          on_point: Callable[[SweepPoint, int, SequenceResult], None] | None = None,
          stats: SweepStats | None = None, chunk_size: int | None = None,
          branch_batch_size: int | None = None) -> dict[SweepPoint, list[SequenceResult]]:
    """All (budget, waits) points for every prompt, from one longest run per prompt (greedy only).

    Prompts go through in chunks of ``chunk_size`` (default: the backend's batch size) because
    each longest run's KV cache is held until its branches are decoded. Branches (short: a
    forced close plus an answer) are decoded ``branch_batch_size`` at a time (default: the
    backend's batch size; raise it when memory allows, decoding is memory-bound).
    """
    if not getattr(backend, "prefix_sweep", False):
        raise ConfigError("backend", getattr(backend, "name", type(backend).__name__),
                          "a backend with the prefix_sweep capability (hf, vllm) for a shared-prefix sweep")
    _check(budgets, waits, policy)
    stats = stats if stats is not None else SweepStats()
    keys = list(keys) if keys is not None else [str(i) for i in range(len(prompts))]
    points = [SweepPoint(b, w) for b in sorted(set(budgets)) for w in sorted(set(waits))]
    out: dict[SweepPoint, list[SequenceResult]] = {pt: [] for pt in points}
    step = chunk_size or backend.max_num_seqs
    for start in range(0, len(prompts), step):
        part = backend.sweep_chunk(prompts[start:start + step], keys[start:start + step], points, policy, stats,
                                   branch_batch_size or backend.max_num_seqs)
        for pt in points:
            out[pt] += part[pt]
        if on_point is not None:
            for pt in points:
                for i, res in enumerate(part[pt]):
                    on_point(pt, start + i, res)
    return out


def _check(budgets: Sequence[int], waits: Sequence[int], policy: BudgetPolicy) -> None:
    if not budgets or any(isinstance(b, bool) or not isinstance(b, int) or b < 0 for b in budgets):
        raise ConfigError("budgets", list(budgets), "a non-empty list of integers >= 0")
    if not waits or any(isinstance(w, bool) or not isinstance(w, int) or w < 0 for w in waits):
        raise ConfigError("waits", list(waits), "a non-empty list of integers >= 0")
    if policy.temperature != 0:
        raise ConfigError("temperature", policy.temperature, "0 for a shared-prefix sweep (greedy only)")
    if policy.min_thinking_tokens > min(budgets):
        raise ConfigError("min_thinking_tokens", policy.min_thinking_tokens, f"<= the smallest budget {min(budgets)}")
