"""The shared-prefix budget sweep on the transformers engine (the ``prefix_sweep`` capability).

The longest run (largest cap, most Waits) of each prompt is decoded once with its KV cache kept;
each (budget, waits) point replays its sampled tokens through its own machine to find where its
thinking closes (:func:`s1kit.forcing.sweep.plan_branches`), and only the forced close and the
answer are decoded there, on a copy of the cached prefix. See :mod:`s1kit.eval.sweep` for the
stage's side.
"""

from __future__ import annotations

from collections import deque

from s1kit.backends.base import Request
from s1kit.backends.hf.engine import DecodeLoop, Prefilled
from s1kit.forcing import SequenceResult
from s1kit.forcing.sweep import longest_policy, plan_branches


def sweep_chunk(backend, prompts, keys, points, policy, stats, branch_batch_size):
    """Every point for a chunk of prompts: one longest run each (KV kept), then the branches."""
    longest = longest_policy(policy, points)
    kv: dict[int, list] = {}
    longs: list[SequenceResult | None] = [None] * len(prompts)
    _run(DecodeLoop(backend, on_finish_kv=kv.__setitem__),
         [(i, Request(list(p), longest, key=keys[i])) for i, p in enumerate(prompts)],
         lambda i, res: longs.__setitem__(i, res))
    stats.long_tokens += sum(len(r.ids) for r in longs)

    plan = plan_branches(backend.compile, longs, points, policy, stats)
    branches = []
    for (pt, i), m in plan.branches:
        cut = len(prompts[i]) + len(m.prompt_suffix()) + len(m.ids)
        branches.append(((pt, i), Prefilled(m, [(k[:, :cut], v[:, :cut]) for k, v in kv[i]], cut)))
    fallbacks = [((pt, i), Request(list(prompts[i]), cp.policy, key=keys[i])) for (pt, i), cp in plan.fallbacks]
    kv.clear()
    _run(DecodeLoop(backend, batch_size=branch_batch_size), branches + fallbacks,
         lambda tag, res: plan.store(tag, res, stats))
    return plan.finish(stats)


def _run(loop, items: list, done) -> None:
    """Drive a DecodeLoop over a fixed list of (tag, Request | Prefilled) items."""
    queue = deque(items)

    def intake(n: int):
        return [queue.popleft() for _ in range(min(n, len(queue)))]

    def finish(tag, res):
        if isinstance(res, BaseException):
            raise res
        done(tag, res)

    loop.run(intake, finish, more=lambda: bool(queue))
