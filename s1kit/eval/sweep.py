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
from collections import deque
from dataclasses import dataclass
from typing import Callable, Sequence

from s1kit.forcing import BudgetMachine, BudgetPolicy, ConfigError, SequenceResult, replay_until_closed

log = logging.getLogger(__name__)


@dataclass(frozen=True, order=True)
class SweepPoint:
    budget: int
    waits: int


@dataclass
class SweepStats:
    long_tokens: int = 0  # tokens decoded by the longest runs
    branch_tokens: int = 0  # tokens decoded after branch points (forced close, answer) and by fallbacks
    reused: int = 0  # points identical to the longest run (nothing decoded)
    shared: int = 0  # points identical to another point's branch (decoded once)
    fallbacks: int = 0  # points generated independently (longest run hit the context window)


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
    _check(budgets, waits, policy)
    stats = stats if stats is not None else SweepStats()
    keys = list(keys) if keys is not None else [str(i) for i in range(len(prompts))]
    points = [SweepPoint(b, w) for b in sorted(set(budgets)) for w in sorted(set(waits))]
    out: dict[SweepPoint, list[SequenceResult]] = {pt: [] for pt in points}
    step = chunk_size or backend.batch_size
    for start in range(0, len(prompts), step):
        part = _sweep_chunk(backend, prompts[start:start + step], keys[start:start + step], points, policy, stats,
                            branch_batch_size or backend.batch_size)
        for pt in points:
            out[pt] += part[pt]
        if on_point is not None:
            for pt in points:
                for i, res in enumerate(part[pt]):
                    on_point(pt, start + i, res)
    return out


def _sweep_chunk(backend, prompts, keys, points, policy, stats, branch_batch_size):
    from s1kit.backends.base import Request
    from s1kit.backends.hf import DecodeLoop, Prefilled

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
            elif _same_close(m, longs[i]):
                out[pt][i] = longs[i]
                stats.reused += 1
            elif (state := _branch_state(i, m)) in first_at:
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


def _branch_state(i: int, m: BudgetMachine) -> tuple:
    """Everything the rest of a branch depends on once its thinking has closed: the prompt, the
    tokens so far, the queued forced close and the accounting the result reports."""
    return (i, tuple(m.ids), tuple(m.queue), tuple(m.sampled), m.phase, m.thinking_tokens, m.forced_tokens,
            m.waits_injected, m.forced_end)


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


def _same_close(m: BudgetMachine, long: SequenceResult) -> bool:
    """The branch closes exactly where and how the longest run did: its answer is the same."""
    j, forced = len(m.ids), list(m.queue)
    return (long.ids[:j] == m.ids and long.ids[j:j + len(forced)] == forced
            and long.thinking_tokens == m.thinking_tokens and long.waits_injected == m.waits_injected
            and long.forced_end == m.forced_end)


def _check(budgets: Sequence[int], waits: Sequence[int], policy: BudgetPolicy) -> None:
    if not budgets or any(isinstance(b, bool) or not isinstance(b, int) or b < 0 for b in budgets):
        raise ConfigError("budgets", list(budgets), "a non-empty list of integers >= 0")
    if not waits or any(isinstance(w, bool) or not isinstance(w, int) or w < 0 for w in waits):
        raise ConfigError("waits", list(waits), "a non-empty list of integers >= 0")
    if policy.temperature != 0:
        raise ConfigError("temperature", policy.temperature, "0 for a shared-prefix sweep (greedy only)")
    if policy.min_thinking_tokens > min(budgets):
        raise ConfigError("min_thinking_tokens", policy.min_thinking_tokens, f"<= the smallest budget {min(budgets)}")
