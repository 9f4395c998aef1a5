"""A shared-prefix sweep equals independent greedy runs at every point, token for token."""

import pytest

from s1kit.backends.base import Request
from s1kit.backends.hf import HFBackend
from s1kit.eval.sweep import SweepPoint, SweepStats, sweep
from s1kit.forcing import BudgetPolicy, ConfigError

from ..conftest import chat_prompt

QUESTIONS = ["How many r in raspberry?", "What is 2+2?", "Compute 17 * 23 step by step.", "gcd(84, 36)?",
             "Sort 5 3 9 1."]


def test_every_sweep_point_equals_an_independent_run(stopping_model, qwen_tokenizer):
    tok = qwen_tokenizer
    backend = HFBackend(stopping_model, tok, batch_size=4)
    prompts = [chat_prompt(tok, q) for q in QUESTIONS]
    policy = BudgetPolicy(max_answer_tokens=12)
    budgets, waits = [0, 10, 30, 60, 90], [0, 1, 2]
    stats = SweepStats()
    points = sweep(backend, prompts, budgets, waits, policy, stats=stats, chunk_size=3, branch_batch_size=7)
    assert set(points) == {SweepPoint(b, w) for b in budgets for w in waits}
    assert stats.reused > 0 and stats.shared > 0 and stats.fallbacks == 0
    assert 0 < stats.branch_tokens < stats.long_tokens * len(budgets) * len(waits)
    varied = set()
    for pt, results in points.items():
        single = policy.replace(max_thinking_tokens=pt.budget, num_ignore=pt.waits)
        alone = backend.generate([Request(p, single, key=str(i)) for i, p in enumerate(prompts)])
        for got, want in zip(results, alone):
            assert got.ids == want.ids, pt
            assert (got.thinking_tokens, got.waits_injected, got.forced_end, got.answer_tokens) == \
                (want.thinking_tokens, want.waits_injected, want.forced_end, want.answer_tokens)
            varied.add((got.forced_end, got.waits_injected))
    assert len(varied) >= 4  # caps, natural ends and several Wait counts were all exercised


def test_sweep_rejects_sampling_and_bad_grids(stopping_model, qwen_tokenizer):
    backend = HFBackend(stopping_model, qwen_tokenizer)
    with pytest.raises(ConfigError, match="temperature"):
        sweep(backend, [[1, 2]], [5], [0], BudgetPolicy(temperature=0.7))
    with pytest.raises(ConfigError, match="budgets"):
        sweep(backend, [[1, 2]], [], [0], BudgetPolicy())
    with pytest.raises(ConfigError, match="waits"):
        sweep(backend, [[1, 2]], [5], [-1], BudgetPolicy())


def test_sweep_decodes_without_autograd(stopping_model, qwen_tokenizer):
    """Called outside inference mode (the eval stage does), every forward of the sweep still runs
    without autograd: with it, each step's cache held the graph of all earlier steps (an 8-prompt
    sweep on a 135M model grew past 24 GB)."""
    import torch

    tok = qwen_tokenizer
    backend = HFBackend(stopping_model, tok, batch_size=2)
    modes = []
    forward = stopping_model.forward

    def recording(*args, **kwargs):
        modes.append((torch.is_inference_mode_enabled(), torch.is_grad_enabled()))
        return forward(*args, **kwargs)

    stopping_model.forward = recording
    try:
        assert torch.is_grad_enabled()
        points = sweep(backend, [chat_prompt(tok, q) for q in QUESTIONS[:2]], [5, 20], [0, 1],
                       BudgetPolicy(max_answer_tokens=4))
    finally:
        del stopping_model.forward
    assert modes and set(modes) == {(True, False)}
    assert all(r.ids for results in points.values() for r in results)
