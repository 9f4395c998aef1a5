"""The shared-prefix budget sweep on vLLM (the ``prefix_sweep`` capability, greedy only).

vLLM exports no KV cache, but its prefix cache (``enable_prefix_caching``) keeps the blocks of
finished requests. So the longest run of each prompt (largest cap, most Waits) is generated first,
as an ordinary request of the backend's mode; each (budget, waits) point replays that run's tokens
through its own machine to find its branch point (:func:`s1kit.forcing.sweep.plan_branches`, the
same plan as the transformers sweep), and the rest is one answer-phase continuation per distinct
branch: prompt + thinking start + the longest run's ids up to the branch + the forced close, as a
plain greedy request whose tokens go through the point's machine (:func:`s1kit.forcing.rounds.run_rounds`,
the multi-round driver; only the answer is decoded, the shared prefix comes from the cache).
Points that branch at the same place in the same state share one continuation; points whose
thinking never closed in the longest run (it hit the context window) are run on their own.
"""

from __future__ import annotations

from s1kit.backends.base import Request
from s1kit.forcing import SequenceResult
from s1kit.forcing.rounds import run_rounds
from s1kit.forcing.sweep import BranchPlan, SweepPoint, SweepStats, longest_policy, plan_branches


def sweep_chunk(backend, prompts, keys, points, policy, stats: SweepStats,
                branch_batch_size: int) -> dict[SweepPoint, list[SequenceResult]]:
    """Every point for a chunk of prompts: the longest runs, then the continuations
    (``branch_batch_size`` of them handed to vLLM at a time), then the fallbacks."""
    longest = longest_policy(policy, points)
    longs = backend.generate([Request(list(p), longest, key=keys[i]) for i, p in enumerate(prompts)])
    stats.long_tokens += sum(len(r.ids) for r in longs)
    plan = plan_branches(backend.compile, longs, points, policy, stats)
    _continue_branches(backend, plan, prompts, keys, branch_batch_size, stats)
    if plan.fallbacks:
        tags = [tag for tag, _ in plan.fallbacks]
        alone = backend.generate([Request(list(prompts[i]), cp.policy, key=keys[i]) for (_, i), cp in plan.fallbacks])
        for tag, res in zip(tags, alone):
            plan.store(tag, res, stats)
    return plan.finish(stats)


def _continue_branches(backend, plan: BranchPlan, prompts, keys, batch: int, stats: SweepStats) -> None:
    """Decode each branch's forced close (prefilled, as part of the continuation's prompt) and answer."""
    for start in range(0, len(plan.branches), batch):
        part = plan.branches[start:start + batch]
        machines = [m for _, m in part]
        prefixes = [list(prompts[i]) + list(m.prompt_suffix()) for (_, i), m in part]
        run_rounds(machines, prefixes, [keys[i] for (_, i), _ in part], backend.complete_rounds,
                   backend.context_window)
        for (tag, _), m in zip(part, machines):
            plan.store(tag, m.result(), stats)
