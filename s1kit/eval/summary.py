"""Summaries of graded samples per benchmark and method: the tables of results.json and the report.

    summarise(samples, min_thinking_tokens=0)["benchmarks"]["math500"]["methods"]["majority_voting"]

Methods (the ``method`` field of a sample row; rows without one are budget forcing):

- ``budget_forcing``: one point per (budget, waits); Control is the share of samples whose
  thinking stays within [min_thinking_tokens, budget].
- ``majority_voting`` (parallel scaling): one point per k = 1, 2, 4, ... n; a problem is correct
  when the largest cluster of its first k answers (clustered by grader equivalence) equals the
  gold; thinking tokens are the total over the k samples (the compute spent). Control: share of
  samples within [min_thinking_tokens, the samples' cap].
- ``rejection_sampling``: one point per budget; a problem with no sample that fit in
  ``max_attempts`` is incorrect and counted in ``none_fit``; thinking statistics are over the
  kept samples, ``mean_attempts`` over all problems. Control: share of problems with a kept sample.

Every method gets s1's Control, Scaling (mean pairwise slope of accuracy over average thinking
tokens, in accuracy points per 1k tokens when multiplied by 100) and Performance (best accuracy),
and every point a 95% bootstrap CI over problems.
"""

from __future__ import annotations

from typing import Any

METHODS = ("budget_forcing", "majority_voting", "rejection_sampling")
N_BOOT = 2000


def method_of(row: dict[str, Any]) -> str:
    return row.get("method", "budget_forcing")


def summarise(samples: list[dict[str, Any]], min_thinking_tokens: int = 0,
              method_names: dict[str, str] | None = None) -> dict[str, Any]:
    """Per benchmark: ``methods`` (points and Control/Scaling/Performance per method), plus the
    budget-forcing method's fields at the top level. ``method_names`` relabels methods (e.g.
    budget forcing under a token-conditional prompt)."""
    names = method_names or {}
    out: dict[str, Any] = {"benchmarks": {}}
    for bench in sorted({s["benchmark"] for s in samples}):
        rows = [s for s in samples if s["benchmark"] == bench]
        methods: dict[str, Any] = {}
        for method in METHODS:
            mine = [s for s in rows if method_of(s) == method]
            if mine:
                summary = _SUMMARISERS[method](mine, min_thinking_tokens)
                methods[method] = {"label": names.get(method, method), **summary}
        entry: dict[str, Any] = {"methods": methods}
        if "budget_forcing" in methods:
            entry.update({k: methods["budget_forcing"][k]
                          for k in ("points", "control", "scaling_per_1k_tokens", "performance")})
        out["benchmarks"][bench] = entry
    return out


def _budget_forcing(rows: list[dict[str, Any]], a_min: int) -> dict[str, Any]:
    from s1kit.eval.metrics import control, thinking_stats

    points = []
    for budget, waits in sorted({(s["budget"], s["waits"]) for s in rows}):
        pr = sorted((s for s in rows if s["budget"] == budget and s["waits"] == waits), key=lambda s: s["id"])
        points.append({"budget": budget, "waits": waits, **_accuracy(pr), **thinking_stats(pr),
                       "control": control([s["thinking_tokens"] for s in pr], a_min, budget),
                       "unparsable": _unparsable(pr)})
    return _with_metrics(points, sum(p["control"] * p["n"] for p in points) / sum(p["n"] for p in points))


def _majority_voting(rows: list[dict[str, Any]], a_min: int) -> dict[str, Any]:
    from s1kit.eval.metrics import bootstrap_ci, control, maj_at_k

    per_problem: dict[str, list[dict[str, Any]]] = {}
    for s in rows:
        per_problem.setdefault(s["id"], []).append(s)
    problems = [sorted(v, key=lambda s: s["sample"]) for _, v in sorted(per_problem.items())]
    n = min(len(p) for p in problems)
    points = []
    for k in sorted({2 ** i for i in range(n.bit_length())} | {n}):  # 1, 2, 4, ... and n
        scores = []
        for samples in problems:
            first = samples[:k]
            kind = first[0]["kind"]
            same = lambda a, b, kind=kind: equivalent(a, b, kind)  # noqa: E731
            scores.append(float(maj_at_k([s["extracted"] for s in first], first[0]["gold"], same)))
        ci = bootstrap_ci(scores, n_boot=N_BOOT, seed=0)
        tokens = sum(sum(s["thinking_tokens"] for s in p[:k]) for p in problems) / len(problems)
        points.append({"k": k, "n": len(problems), "accuracy": ci.mean, "ci_low": ci.low, "ci_high": ci.high,
                       "mean_thinking_tokens": tokens, "unparsable": sum(_unparsable(p[:k]) for p in problems)})
    everything = [s for p in problems for s in p]
    cap = max(s["budget"] for s in everything)
    return _with_metrics(points, control([s["thinking_tokens"] for s in everything], a_min, cap))


def equivalent(a: str, b: str, kind: str) -> bool:
    """Grader equivalence of two answers (votes cluster by it). The grader insists that the
    second one, the gold, be valid for its kind (an integer, a letter); when two votes are
    compared and the second is not, they are equal only as normalised strings."""
    from s1kit.eval.grade import exact_key, grade_answer, normalise

    try:
        return grade_answer(a, b, kind).correct
    except ValueError:
        return exact_key(normalise(a)) == exact_key(normalise(b))


def _rejection_sampling(rows: list[dict[str, Any]], a_min: int) -> dict[str, Any]:
    import numpy as np

    points = []
    for budget in sorted({s["budget"] for s in rows}):
        pr = sorted((s for s in rows if s["budget"] == budget), key=lambda s: s["id"])
        kept = [s for s in pr if s["thinking_tokens"] is not None]
        tokens = [s["thinking_tokens"] for s in kept]
        points.append({"budget": budget, **_accuracy(pr), "kept": len(kept), "none_fit": len(pr) - len(kept),
                       "mean_attempts": float(np.mean([s["attempts"] for s in pr])),
                       "max_attempts": max(s["attempts"] for s in pr),
                       "mean_thinking_tokens": float(np.mean(tokens)) if tokens else 0.0,
                       "median_thinking_tokens": float(np.median(tokens)) if tokens else 0.0,
                       "control": len(kept) / len(pr), "unparsable": _unparsable(kept)})
    return _with_metrics(points, sum(p["control"] * p["n"] for p in points) / sum(p["n"] for p in points))


_SUMMARISERS = {"budget_forcing": _budget_forcing, "majority_voting": _majority_voting,
                "rejection_sampling": _rejection_sampling}


def _accuracy(rows: list[dict[str, Any]]) -> dict[str, Any]:
    from s1kit.eval.metrics import bootstrap_ci

    ci = bootstrap_ci([float(s["correct"]) for s in rows], n_boot=N_BOOT, seed=0)
    return {"n": len(rows), "accuracy": ci.mean, "ci_low": ci.low, "ci_high": ci.high}


def _unparsable(rows: list[dict[str, Any]]) -> int:
    return sum(s["grade_tier"] in ("unparsable", "judge_unparsable") for s in rows)


def _with_metrics(points: list[dict[str, Any]], control_share: float) -> dict[str, Any]:
    from s1kit.eval.metrics import performance, scaling

    curve = _dedupe([(p["mean_thinking_tokens"], p["accuracy"]) for p in points])
    scal = scaling(curve) if len(curve) >= 2 else None
    return {"points": points, "control": control_share,
            "scaling_per_1k_tokens": scal.per_1k_tokens if scal else None,
            "performance": performance(curve)}


def _dedupe(curve: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points with equal mean thinking tokens are averaged (a slope between them is undefined)."""
    groups: dict[float, list[float]] = {}
    for tokens, acc in curve:
        groups.setdefault(round(tokens, 6), []).append(acc)
    return [(t, sum(a) / len(a)) for t, a in sorted(groups.items())]
