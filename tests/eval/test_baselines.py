"""Majority voting and rejection sampling on a tiny model; conditional prompts."""

import pytest

from s1kit.backends.hf import HFBackend
from s1kit.eval.baselines import conditional_prompt, majority_curve, majority_voting, rejection_sampling
from s1kit.forcing import BudgetPolicy, ConfigError

from ..conftest import chat_prompt


def test_majority_voting_samples_differ_and_curve_counts_compute(stopping_model, qwen_tokenizer):
    backend = HFBackend(stopping_model, qwen_tokenizer, batch_size=8)
    prompts = [chat_prompt(qwen_tokenizer, q) for q in ["What is 2+2?", "gcd(8, 12)?"]]
    policy = BudgetPolicy(max_thinking_tokens=20, max_answer_tokens=6, temperature=1.0, seed=3)
    votes = majority_voting(backend, prompts, policy, n=4)
    assert [len(v) for v in votes] == [4, 4]
    assert len({tuple(r.ids) for r in votes[0]}) > 1  # independent samples
    curve = majority_curve(votes, ["4", "4"], kind="math")
    assert [p["k"] for p in curve] == [1, 2, 4]
    assert curve[2]["mean_thinking_tokens"] == pytest.approx(sum(r.thinking_tokens for v in votes for r in v) / 2)
    with pytest.raises(ConfigError, match="temperature"):
        majority_voting(backend, prompts, policy.replace(temperature=0.0), n=2)


def test_rejection_sampling_keeps_only_samples_that_fit(stopping_model, qwen_tokenizer):
    backend = HFBackend(stopping_model, qwen_tokenizer, batch_size=8)
    prompts = [chat_prompt(qwen_tokenizer, q) for q in ["What is 2+2?", "Sort 3 1 2.", "Hi"]]
    policy = BudgetPolicy(max_answer_tokens=4, temperature=1.0, seed=1)
    out = rejection_sampling(backend, prompts, policy, budget=40, max_attempts=6)
    assert all(1 <= o["attempts"] <= 6 for o in out)
    for o in out:
        if o["result"] is not None:
            assert o["result"].thinking_tokens <= 40 and not o["result"].forced_end
        else:
            assert o["attempts"] == 6
    assert any(o["result"] is not None for o in out)


def test_conditional_prompts():
    assert conditional_prompt("Q?", "token", 512).endswith("Think for up to 512 tokens.")
    assert conditional_prompt("Q?", "step", 8).endswith("Think for up to 8 steps.")
    assert conditional_prompt("Q?", "class", "short").endswith("Think for a short time.")
    with pytest.raises(ConfigError):
        conditional_prompt("Q?", "class", "medium")
    with pytest.raises(ConfigError):
        conditional_prompt("Q?", "vibes", 1)
