"""What a budget sweep shares across engines (pure Python): its points, counters, branch tests and
the plan that sorts every (point, prompt) of a chunk into reused, shared, branched or fallback."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from s1kit.forcing.machine import BudgetMachine, CompiledPolicy, SequenceResult, replay_until_closed
from s1kit.forcing.policy import BudgetPolicy


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


def branch_state(i: int, m: BudgetMachine) -> tuple:
    """Everything the rest of a branch depends on once its thinking has closed: the prompt, the
    tokens so far, the queued forced close and the accounting the result reports."""
    return (i, tuple(m.ids), tuple(m.queue), tuple(m.sampled), m.phase, m.thinking_tokens, m.forced_tokens,
            m.waits_injected, m.forced_end)


def same_close(m: BudgetMachine, long: SequenceResult) -> bool:
    """The branch closes exactly where and how the longest run did: its answer is the same."""
    j, forced = len(m.ids), list(m.queue)
    return (long.ids[:j] == m.ids and long.ids[j:j + len(forced)] == forced
            and long.thinking_tokens == m.thinking_tokens and long.waits_injected == m.waits_injected
            and long.forced_end == m.forced_end)


def longest_policy(policy: BudgetPolicy, points: Sequence[SweepPoint]) -> BudgetPolicy:
    """The run every point branches off: the largest cap with the most Waits."""
    return policy.replace(max_thinking_tokens=max(p.budget for p in points), num_ignore=max(p.waits for p in points))


Tag = tuple  # (SweepPoint, prompt index)


@dataclass
class BranchPlan:
    """Where each (point, prompt) of a chunk comes from, once the longest runs are known."""

    out: dict[SweepPoint, list[SequenceResult | None]]
    branches: list[tuple[Tag, BudgetMachine]] = field(default_factory=list)
    """Machines replayed to their branch point, the forced close queued: decode close + answer."""
    prefix_len: dict[Tag, int] = field(default_factory=dict)
    """Generated ids already decoded by the longest run at each branch (its forced close excluded)."""
    fallbacks: list[tuple[Tag, CompiledPolicy]] = field(default_factory=list)
    """Points whose thinking never closed in the longest run: run them on their own."""
    copies: list[tuple[Tag, Tag]] = field(default_factory=list)
    """(tag, the tag whose branch it equals): greedy, same prefix and state, same answer."""

    def store(self, tag: Tag, res: SequenceResult, stats: SweepStats) -> None:
        """A branch's or fallback's result; counts the tokens decoded after the branch point."""
        pt, i = tag
        self.out[pt][i] = res
        stats.branch_tokens += len(res.ids) - self.prefix_len.get(tag, 0)

    def finish(self, stats: SweepStats) -> dict[SweepPoint, list[SequenceResult]]:
        """Fill the shared points once every branch is stored; the chunk's results."""
        for (pt, i), (src_pt, _) in self.copies:
            self.out[pt][i] = self.out[src_pt][i]
        stats.fallbacks += len(self.fallbacks)
        return self.out  # type: ignore[return-value]


def plan_branches(compile: Callable[[BudgetPolicy], CompiledPolicy], longs: Sequence[SequenceResult],
                  points: Sequence[SweepPoint], policy: BudgetPolicy, stats: SweepStats) -> BranchPlan:
    """Replay each longest run through every point's machine to find its branch point (greedy:
    a machine's decisions depend only on the tokens it sees)."""
    plan = BranchPlan({pt: [None] * len(longs) for pt in points})
    first_at: dict[tuple, Tag] = {}  # branch state -> the tag that decodes it
    # one compiled policy per point, shared by its prompts' machines (it tokenizes the policy's strings)
    compiled = {pt: compile(policy.replace(max_thinking_tokens=pt.budget, num_ignore=pt.waits)) for pt in points}
    for i, long in enumerate(longs):
        for pt in points:
            cp = compiled[pt]
            m = BudgetMachine(cp, pt.budget)
            if not replay_until_closed(m, long.sampled):
                plan.fallbacks.append(((pt, i), cp))
            elif same_close(m, long):
                plan.out[pt][i] = long
                stats.reused += 1
            elif (state := branch_state(i, m)) in first_at:
                plan.copies.append(((pt, i), first_at[state]))
                stats.shared += 1
            else:
                first_at[state] = (pt, i)
                plan.prefix_len[(pt, i)] = len(m.ids)
                plan.branches.append(((pt, i), m))
    return plan
