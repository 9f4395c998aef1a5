"""The one multi-round driver equals the machine's one-pass driving, on any model that is a function
of its context (what a re-prefilling engine is), for special and multi-token stops."""

from __future__ import annotations

import hashlib

import pytest

from s1kit.forcing import BudgetMachine, BudgetPolicy, CompiledPolicy, simulate
from s1kit.forcing.rounds import round_seed, run_rounds, sample_seed

from .fake import FakeCodec
from .test_machine import EOS, MODEL_TOKENS, SPECIAL_STOPS, TEXT_STOPS

CODEC = FakeCodec()
PREFIX = [0, 1, 2]


def model(seed: int):
    def next_token(ids, banned) -> int:
        h = hashlib.sha256(f"{seed}:{ids}".encode()).digest()
        choices = [t for t in MODEL_TOKENS if t not in banned]
        return choices[h[0] % len(choices)]
    return next_token


def engine(next_token, offset: int):
    """A re-prefilling engine: continues each round's context up to max_tokens or a stop id."""
    def complete(rounds):
        out = []
        for r in rounds:
            ctx, toks = list(r.context[offset:]), []
            while len(toks) < r.max_tokens:
                banned = r.stop_ids if (r.ban_first and not toks) else frozenset()
                tok = next_token(ctx, banned)
                toks.append(tok)
                ctx.append(tok)
                if tok in r.stop_ids:
                    break
            out.append(toks)
        return out
    return complete


@pytest.mark.parametrize("stops", [SPECIAL_STOPS, TEXT_STOPS], ids=["special", "text"])
@pytest.mark.parametrize("seed", range(12))
def test_rounds_equal_one_pass(stops, seed):
    policy = BudgetPolicy(max_thinking_tokens=30, num_ignore=2, min_thinking_tokens=5, max_answer_tokens=8, **stops)
    cp = CompiledPolicy(policy, CODEC, eos_ids=[EOS])
    one = simulate(BudgetMachine(cp, 30), model(seed), max_steps=5000)
    m = BudgetMachine(cp, 30)
    prefix = PREFIX + list(m.prompt_suffix())
    run_rounds([m], [prefix], ["k"], engine(model(seed), len(prefix)))
    got = m.result()
    assert (got.ids, got.thinking_tokens, got.forced_tokens, got.answer_tokens, got.waits_injected, got.forced_end,
            got.finish_reason, got.forced_spans) == (one.ids, one.thinking_tokens, one.forced_tokens,
                                                     one.answer_tokens, one.waits_injected, one.forced_end,
                                                     one.finish_reason, one.forced_spans)


def test_round_seed_is_the_remote_seed():
    assert round_seed(3, "q1#0", 2) == sample_seed(3, "q1#0#2")
    assert round_seed(3, "q1#0", 2) != round_seed(3, "q1#0", 3)
