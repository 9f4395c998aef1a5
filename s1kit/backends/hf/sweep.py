"""The shared-prefix budget sweep on the transformers engine (the ``prefix_sweep`` capability).

The longest run (largest cap, most Waits) of each prompt is decoded once with its KV cache kept;
each (budget, waits) point replays its sampled tokens through its own machine to find where its
thinking closes, and only the forced close and the answer are decoded there, on a copy of the
cached prefix. See :mod:`s1kit.eval.sweep` for the stage's side.
"""

from __future__ import annotations

from collections import deque

from s1kit.backends.base import Request
from s1kit.backends.hf.engine import DecodeLoop, Prefilled
from s1kit.forcing import BudgetMachine, SequenceResult, replay_until_closed
from s1kit.forcing.sweep import SweepPoint, branch_state, same_close


def sweep_chunk(backend, prompts, keys, points, policy, stats, branch_batch_size):
    """Every point for a chunk of prompts: one longest run each (KV kept), then the branches."""
    longest = policy.replace(max_thinking_tokens=max(p.budget for p in points), num_ignore=max(p.waits for p in points))
    kv: dict[int, list] = {}
    longs: list[SequenceResult | None] = [None] * len(prompts)
    _run(DecodeLoop(backend, on_finish_kv=kv.__setitem__),
         [(i, Request(list(p), longest, key=keys[i])) for i, p in enumerate(prompts)],
         lambda i, res: longs.__setitem__(i, res))
    stats.long_tokens += sum(len(r.ids) for r in longs)

    out: dict[SweepPoint, list[SequenceResult | None]] = {pt: [None] * len(prompts) for pt in points}
    branches, fallbacks, copies = [], [], []
    first_at: dict[tuple, tuple] = {}  # branch state -> the tag that decodes it
    prefix_len: dict[tuple, int] = {}  # tag -> generated tokens already in the cache at the branch
    for i, prompt in enumerate(prompts):
        for pt in points:
            cp = backend.compile(policy.replace(max_thinking_tokens=pt.budget, num_ignore=pt.waits))
            m = BudgetMachine(cp, pt.budget)
            if not replay_until_closed(m, longs[i].sampled):
                fallbacks.append(((pt, i), Request(list(prompt), cp.policy, key=keys[i])))
            elif same_close(m, longs[i]):
                out[pt][i] = longs[i]
                stats.reused += 1
            elif (state := branch_state(i, m)) in first_at:
                copies.append(((pt, i), first_at[state]))  # greedy: same prefix and state, same answer
                stats.shared += 1
            else:
                first_at[state] = (pt, i)
                prefix_len[(pt, i)] = len(m.ids)
                cut = len(prompt) + len(m.prompt_suffix()) + len(m.ids)
                branches.append(((pt, i), Prefilled(m, [(k[:, :cut], v[:, :cut]) for k, v in kv[i]], cut)))
    kv.clear()

    def store(tag, res: SequenceResult) -> None:
        pt, i = tag
        out[pt][i] = res
        stats.branch_tokens += len(res.ids) - prefix_len.get(tag, 0)

    _run(DecodeLoop(backend, batch_size=branch_batch_size), branches + fallbacks, store)
    for (pt, i), (src_pt, _) in copies:
        out[pt][i] = out[src_pt][i]
    stats.fallbacks += len(fallbacks)
    return out


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
