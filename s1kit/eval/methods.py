"""The eval stage's methods: budget forcing (shared-prefix sweep where the backend has the
``prefix_sweep`` capability, independent requests elsewhere), majority voting, rejection sampling;
each writes graded rows as its chunks finish."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _prompts(cfg, backend, todo, budget: int | None = None) -> list[list[int]]:
    from s1kit.eval.baselines import conditional_prompt
    from s1kit.formats import render_prompt_ids

    def question(row) -> str:
        if cfg.prompt_mode == "none" or budget is None:
            return row["question"]
        if cfg.prompt_template is not None:
            return cfg.prompt_template.format(question=row["question"], value=cfg.prompt_value(budget))
        return conditional_prompt(row["question"], cfg.prompt_mode, cfg.prompt_value(budget))

    return [render_prompt_ids(backend.tokenizer, question(r), cfg.chat_template, cfg.system_prompt) for r in todo]


class _Sink:
    """Grades and appends rows, with a progress bar; one per method run."""

    def __init__(self, cfg, samples_path: Path, judge, total: int, desc: str) -> None:
        from tqdm.auto import tqdm

        from s1kit.io import JsonlAppender

        self.cfg, self.judge = cfg, judge
        self.writer = JsonlAppender(samples_path)
        self.bar = tqdm(total=total, desc=desc, unit="sample", disable=not cfg.progress)

    def write(self, problem: dict[str, Any], res, **fields: Any) -> None:
        self.writer.write(sample_row(problem, res, self.cfg.grade_timeout_s, self.judge, **fields))
        self.bar.update(1)

    def close(self) -> None:
        self.writer.close()
        self.bar.close()


def run_budget_forcing(cfg, policy, backend, todo, budgets, samples_path, judge) -> None:
    from s1kit.eval.sweep import sweep

    waits = cfg.wait_list()
    sink = _Sink(cfg, samples_path, judge, len(todo) * len(budgets) * len(waits), f"eval {todo[0]['benchmark']}")
    if budgets == [None]:  # no thinking phase (a base model answering directly): one plain point
        try:
            _run_plain(policy, backend, todo, cfg, sink)
        finally:
            sink.close()
        return
    # Conditional prompts differ per budget, so each budget is its own sweep (over the Waits).
    groups = [(b, [b]) for b in budgets] if cfg.prompt_mode != "none" else [(None, budgets)]
    try:
        for prompt_budget, point_budgets in groups:
            prompts = _prompts(cfg, backend, todo, prompt_budget)
            # a capability flag; a shared-prefix sweep is greedy only, sampled points are their own requests
            run_sweep = sweep if backend.prefix_sweep and policy.temperature == 0 else _sweep_independently
            run_sweep(backend, prompts, point_budgets, waits, policy, keys=[r["id"] for r in todo],
                      on_point=lambda pt, i, res: sink.write(todo[i], res, method="budget_forcing",
                                                             budget=pt.budget, waits=pt.waits))
    finally:
        sink.close()


def _sweep_independently(backend, prompts, budgets, waits, policy, keys, on_point) -> None:
    """Every (budget, waits) point as its own request, all handed to the backend together: for
    backends without the ``prefix_sweep`` capability (reference, openai) and for sampled policies.
    Greedy results equal the shared-prefix sweep's, point for point."""
    from s1kit.backends.base import Request
    from s1kit.eval.sweep import SweepPoint

    points = [SweepPoint(b, w) for b in sorted(set(budgets)) for w in sorted(set(waits))]
    n = len(prompts)
    reqs = [Request(list(p), policy.replace(max_thinking_tokens=pt.budget, num_ignore=pt.waits), key=keys[i])
            for pt in points for i, p in enumerate(prompts)]
    backend.generate(reqs, on_result=lambda k, res: on_point(points[k // n], k % n, res))


def _run_plain(policy, backend, todo, cfg, sink) -> None:
    from s1kit.backends.base import Request

    for start in range(0, len(todo), backend.max_num_seqs):
        part = todo[start:start + backend.max_num_seqs]
        prompts = _prompts(cfg, backend, part)
        results = backend.generate([Request(p, policy, key=r["id"]) for p, r in zip(prompts, part)])
        for problem, res in zip(part, results):
            sink.write(problem, res, method="budget_forcing", budget=None, waits=0)


def run_majority(cfg, policy, backend, todo, budgets, samples_path, judge) -> None:
    from s1kit.eval.baselines import majority_voting

    cap = cfg.majority_budget or max(budgets)
    sampling = policy.replace(temperature=cfg.majority_temperature, max_thinking_tokens=cap, num_ignore=0)
    sink = _Sink(cfg, samples_path, judge, len(todo) * cfg.majority_n, f"majority {todo[0]['benchmark']}")
    step = max(1, backend.max_num_seqs // cfg.majority_n)  # problems per chunk: rows land on disk as they finish
    try:
        for start in range(0, len(todo), step):
            part = todo[start:start + step]
            votes = majority_voting(backend, _prompts(cfg, backend, part), sampling, cfg.majority_n,
                                    keys=[r["id"] for r in part])
            for problem, samples in zip(part, votes):
                for j, res in enumerate(samples):
                    sink.write(problem, res, method="majority_voting", budget=cap, waits=0, sample=j)
    finally:
        sink.close()


def run_rejection(cfg, policy, backend, todo, budgets, samples_path, judge) -> None:
    from s1kit.eval.baselines import rejection_sampling

    sampling = policy.replace(temperature=cfg.rejection_temperature)
    rbudgets = sorted({int(b) for b in cfg.rejection_budgets})
    sink = _Sink(cfg, samples_path, judge, len(todo) * len(rbudgets), f"rejection {todo[0]['benchmark']}")
    try:
        for start in range(0, len(todo), backend.max_num_seqs):
            part = todo[start:start + backend.max_num_seqs]
            prompts = _prompts(cfg, backend, part)
            for budget in rbudgets:
                kept = rejection_sampling(backend, prompts, sampling, budget, cfg.rejection_max_attempts,
                                          keys=[f"{r['id']}@{budget}" for r in part])
                for problem, out in zip(part, kept):
                    sink.write(problem, out["result"], method="rejection_sampling", budget=budget, waits=0,
                               attempts=out["attempts"])
    finally:
        sink.close()


def sample_row(problem: dict[str, Any], res, timeout_s: float, judge=None, **fields: Any) -> dict[str, Any]:
    """One graded sample; a grader failure is recorded with its reason, never fatal.

    ``res`` None (rejection sampling found no sample within budget) is an incorrect row with
    tier "no_sample_fit" and no thinking statistics.
    """
    base = {"benchmark": problem["benchmark"], "id": problem["id"], "kind": problem["kind"], **fields,
            "gold": problem["answer"]}
    if res is None:
        return {**base, "thinking": None, "answer_text": None, "thinking_tokens": None, "answer_tokens": None,
                "waits_injected": None, "forced_end": None, "finish_reason": None, "correct": False,
                "grade_tier": "no_sample_fit", "extracted": None, "grade_reason": "no attempt fit the budget"}
    return {**base, "thinking": res.thinking_text, "answer_text": res.answer_text,
            "thinking_tokens": res.thinking_tokens, "answer_tokens": res.answer_tokens,
            "waits_injected": res.waits_injected, "forced_end": res.forced_end,
            "finish_reason": res.finish_reason, **grade_sample(res.answer_text, problem, timeout_s, judge)}


def grade_sample(text: str, problem: dict[str, Any], timeout_s: float, judge=None) -> dict[str, Any]:
    """Grade fields of one sample; a grader crash becomes tier "error" with the exception as reason."""
    from s1kit.eval import grade as grader

    try:
        verdict = grader.grade(text, problem["answer"], problem["kind"], timeout_s=timeout_s, judge=judge,
                               question=problem["question"])
        return {"correct": verdict.correct, "grade_tier": verdict.tier, "extracted": verdict.extracted,
                "grade_reason": verdict.reason}
    except Exception as err:  # noqa: BLE001  (the run goes on; the sample counts as incorrect, with the reason)
        log.warning("grading %s/%s failed: %r", problem["benchmark"], problem["id"], err)
        return {"correct": False, "grade_tier": "error", "extracted": None, "grade_reason": repr(err)}
