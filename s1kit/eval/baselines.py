"""The paper's baselines (s1 Table 3): majority voting, rejection sampling, conditional control.

    votes = majority_voting(backend, prompts, policy.replace(temperature=0.7), n=8)
    curve = majority_curve(votes, golds, kind="math")            # maj@1, maj@2, maj@4, maj@8
    kept = rejection_sampling(backend, prompts, policy.replace(temperature=1.0), budget=2048)
    prompt = conditional_prompt(question, "token", 2048)          # "Think for up to 2048 tokens."

Majority voting is parallel scaling: n independent samples, the answer most samples agree on
(answers clustered by grader equivalence, not string equality), compute measured as total
thinking tokens (k x mean per sample). Rejection sampling resamples until a sample's thinking
fits the budget naturally (the cap is budget + 1: a capped sample is a rejection, as in s1's
harness), counting attempts. Conditional control puts the budget in the prompt (token-, step- or
class-conditional); a model SFT'd on traces in that format is evaluated by the same command.
"""

from __future__ import annotations

from typing import Any, Sequence

from s1kit.forcing import BudgetPolicy, ConfigError, SequenceResult

CONDITIONAL_TEMPLATES = {
    "token": "{question}\n\nThink for up to {value} tokens.",
    "step": "{question}\n\nThink for up to {value} steps.",
    "class": "{question}\n\nThink for a {value} time.",  # value: "short" or "long"
}


def conditional_prompt(question: str, mode: str, value: int | str) -> str:
    """The question with its thinking budget stated in the prompt (s1's conditional control)."""
    if mode not in CONDITIONAL_TEMPLATES:
        raise ConfigError("mode", mode, "one of " + ", ".join(CONDITIONAL_TEMPLATES))
    if mode == "class" and value not in ("short", "long"):
        raise ConfigError("value", value, "'short' or 'long' for class-conditional control")
    return CONDITIONAL_TEMPLATES[mode].format(question=question, value=value)


def majority_voting(backend, prompts: Sequence[Sequence[int]], policy: BudgetPolicy, n: int,
                    keys: Sequence[str] | None = None) -> list[list[SequenceResult]]:
    """n samples per prompt (seeded per sample), batched through the backend."""
    from s1kit.backends.base import Request

    if policy.temperature == 0:
        raise ConfigError("temperature", 0, "> 0 for majority voting (greedy samples are identical)")
    if n < 1:
        raise ConfigError("n", n, "an integer >= 1")
    keys = list(keys) if keys is not None else [str(i) for i in range(len(prompts))]
    reqs = [Request(list(p), policy, key=f"{keys[i]}#s{j}") for i, p in enumerate(prompts) for j in range(n)]
    flat = backend.generate(reqs)
    return [flat[i * n:(i + 1) * n] for i in range(len(prompts))]


def majority_curve(samples: list[list[SequenceResult]], golds: Sequence[str], kind: str,
                   ks: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """maj@k accuracy for k = 1, 2, 4, ... n, with total thinking tokens spent (k x mean)."""
    from s1kit.eval.grade import extract_answer, grade_answer
    from s1kit.eval.metrics import maj_at_k

    n = min(len(s) for s in samples)
    ks = list(ks) if ks else [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= n]
    answers = [[extract_answer(r.text, kind).answer for r in per] for per in samples]
    same = lambda a, b: grade_answer(a, b, kind).correct  # noqa: E731  (grader equivalence)
    curve = []
    for k in ks:
        acc = sum(maj_at_k(a[:k], gold, same) for a, gold in zip(answers, golds)) / len(samples)
        tokens = sum(sum(r.thinking_tokens for r in per[:k]) for per in samples) / len(samples)
        curve.append({"k": k, "accuracy": acc, "mean_thinking_tokens": tokens})
    return curve


def rejection_sampling(backend, prompts: Sequence[Sequence[int]], policy: BudgetPolicy, budget: int,
                       max_attempts: int = 16, keys: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Per prompt: the first sample whose thinking ends naturally within ``budget`` tokens.

    Returns ``{"result": SequenceResult | None, "attempts": int}`` per prompt; None when every
    attempt overran (counted, never silently replaced by a capped sample).
    """
    from s1kit.backends.base import Request

    if policy.temperature == 0:
        raise ConfigError("temperature", 0, "> 0 for rejection sampling (greedy retries repeat)")
    keys = list(keys) if keys is not None else [str(i) for i in range(len(prompts))]
    trial = policy.replace(max_thinking_tokens=budget + 1, num_ignore=0, min_thinking_tokens=0)
    out: list[dict[str, Any]] = [{"result": None, "attempts": 0} for _ in prompts]
    pending = list(range(len(prompts)))
    for attempt in range(max_attempts):
        if not pending:
            break
        results = backend.generate([Request(list(prompts[i]), trial, key=f"{keys[i]}#r{attempt}") for i in pending])
        still = []
        for i, res in zip(pending, results):
            out[i]["attempts"] += 1
            if res.forced_end:  # it would have thought longer than the budget
                still.append(i)
            else:
                out[i]["result"] = res
        pending = still
    return out
