"""The one multi-round driver: s1's algorithm over any engine that continues a prefix.

Used by ``reference`` (transformers ``generate``), ``vllm-multiround`` (``LLM.generate`` with
prefix caching) and ``openai`` (a ``/v1/completions`` server). Each round continues the prompt,
the thinking start and every id so far, with ``max_tokens`` = what is left of the phase's budget
and that phase's stops; the returned tokens go through the same :class:`BudgetMachine` until it
acts (suppresses a stop, closes the thinking, finishes), the rest of the round is dropped and the
forced ids join the next round's prefix. Sampled rounds are seeded with :func:`round_seed`
(identical for every multi-round engine).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Sequence

from s1kit.forcing.machine import BudgetMachine, Phase
from s1kit.forcing.policy import BudgetPolicy


def sample_seed(seed: int, key: str) -> int:
    """A per-sample seed from the policy seed and the sample's key (stable across runs)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def round_seed(seed: int, key: str, rnd: int) -> int:
    """The seed of a sample's round ``rnd``: from (policy seed, request key, round)."""
    return sample_seed(seed, f"{key}#{rnd}")


@dataclass(frozen=True)
class Round:
    """One continuation request."""

    context: list[int]
    """Prompt, thinking start and every id so far."""
    max_tokens: int
    stop_texts: tuple[str, ...]
    stop_ids: frozenset[int]
    thinking: bool
    ban_first: bool
    """No stop as the first token (s1's ``min_tokens=1``)."""
    seed: int | None
    """The round's sampling seed (None: greedy)."""
    index: int
    policy: BudgetPolicy
    """The sequence's policy (temperature, top_p, top_k for the engine's sampler)."""


def next_round(m: BudgetMachine, prefix: Sequence[int], key: str, rnd: int,
               context_window: int | None = None) -> Round | None:
    """The machine's next round, or None when it is done (forced ids are moved into its ids)."""
    while m.has_forced():
        m.step()  # forced ids are simply part of the next round's prompt
    if m.done:
        return None
    cp, pol = m.cp, m.policy
    thinking = m.phase is Phase.THINKING
    if thinking:
        budget = m.max_thinking - m.thinking_tokens  # type: ignore[operator]
        stops, stop_ids = pol.thinking_stops, cp.thinking_stops.ids
    else:
        budget = pol.max_answer_tokens - m.answer_tokens
        stops, stop_ids = pol.answer_stops, cp.answer_stops.ids
    context = list(prefix) + m.ids
    if context_window is not None:
        budget = min(budget, context_window - len(context))
    if budget <= 0:
        m.stop("length")
        return None
    seed = round_seed(pol.seed, key, rnd) if pol.temperature > 0 else None
    return Round(context, budget, tuple(stops), stop_ids, thinking, bool(m.banned_ids()), seed, rnd, pol)


def feed_round(m: BudgetMachine, toks: Sequence[int]) -> tuple[int, bool]:
    """Run a round's tokens through the machine until it acts; (tokens consumed, whether it acted)."""
    phase, consumed = m.phase, 0
    for tok in toks:
        if acted(m, phase):
            break
        m.consume(tok)
        consumed += 1
    return consumed, acted(m, phase)


def acted(m: BudgetMachine, phase: Phase) -> bool:
    """Suppressed a stop, closed the thinking or finished: the rest of the round is dropped."""
    return m.done or m.has_forced() or m.phase is not phase


def run_rounds(machines: Sequence[BudgetMachine], prefixes: Sequence[Sequence[int]], keys: Sequence[str],
               complete: Callable[[list[Round]], list[list[int]]], context_window: int | None = None) -> None:
    """Drive every machine to the end in lock-step rounds; ``complete(rounds)`` returns each
    round's generated ids (the engine's batch call). A round that moves nothing ends its
    sequence with 'length' (the engine could not go on)."""
    rnd = [0] * len(machines)
    while True:
        batch = []
        for i, m in enumerate(machines):
            r = next_round(m, prefixes[i], keys[i], rnd[i], context_window)
            if r is not None:
                batch.append((i, r))
                rnd[i] += 1
        if not batch:
            return
        for (i, _), toks in zip(batch, complete([r for _, r in batch])):
            consumed, did = feed_round(machines[i], toks)
            if not consumed and not did:
                machines[i].stop("length")
