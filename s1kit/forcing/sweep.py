"""What a budget sweep shares across engines (pure Python): its points, counters and branch tests."""

from __future__ import annotations

from dataclasses import dataclass

from s1kit.forcing.machine import BudgetMachine, SequenceResult


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
