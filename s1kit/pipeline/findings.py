"""The report's numbers: every finding computed from the stages' sample files, with paired CIs.

    f = findings(ctx)              # nested dict: Control, Scaling, SFT vs bases, ablations, Waits, ...
    rows = finding_rows(ctx, f)    # [{'finding', 'measured', 'ci', 'verdict', 'holds'}]: one per line of
                                   # the findings table (the Markdown and HTML renderers share them)

Statistics beyond s1kit.eval's summary (issue 14), all from ``samples.jsonl`` with the functions
of s1kit.eval.metrics: full + N ``Wait``s against full (paired), the share of correct answers a
forced ``Wait`` keeps and of wrong ones it fixes, the scaling curve's worst dip below cap 0 and
below the previous cap (paired), and budget forcing against majority voting at matched average
thinking tokens (sequential against parallel scaling, paired per problem).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

N_BOOT = 2000


# ---------------------------------------------------------------------------------------------
# numbers
# ---------------------------------------------------------------------------------------------


def read_samples(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def per_problem(samples: list[dict[str, Any]], method: str = "budget_forcing", budget: int | None = None,
                waits: int = 0) -> dict[str, dict[str, float]]:
    """{problem id: {'correct': 0/1, 'tokens': thinking tokens}} at one point of one method."""
    out = {}
    for s in samples:
        if s.get("method", "budget_forcing") != method or s.get("waits", 0) != waits:
            continue
        if budget is not None and s.get("budget") != budget:
            continue
        out[s["id"]] = {"correct": float(bool(s["correct"])), "tokens": float(s.get("thinking_tokens") or 0)}
    return out


def scaling_ci(samples: list[dict[str, Any]], budgets: list[int], seed: int = 0) -> dict[str, float]:
    """s1's Scaling (accuracy points per 1k thinking tokens, waits=0 budget points) with a 95%
    bootstrap CI over problems."""
    from s1kit.eval.metrics import scaling

    tables = [per_problem(samples, budget=b) for b in budgets]
    ids = sorted(set.intersection(*(set(t) for t in tables)))
    correct = np.array([[t[i]["correct"] for t in tables] for i in ids])
    tokens = np.array([[t[i]["tokens"] for t in tables] for i in ids])

    def slope(rows: np.ndarray) -> float | None:
        pts = list(zip(tokens[rows].mean(0), 100 * correct[rows].mean(0)))
        merged: dict[float, list[float]] = {}
        for tok, acc in pts:
            merged.setdefault(round(float(tok), 6), []).append(float(acc))
        pts = [(t, float(np.mean(a))) for t, a in merged.items()]
        return scaling(pts).per_1k_tokens if len(pts) >= 2 else None

    rng = np.random.default_rng(seed)
    draws = [slope(rng.integers(0, len(ids), len(ids))) for _ in range(N_BOOT)]
    draws = np.array([d for d in draws if d is not None])
    point = slope(np.arange(len(ids)))
    low, high = np.quantile(draws, [0.025, 0.975]) if len(draws) else (float("nan"), float("nan"))
    return {"scaling_per_1k": point, "ci_low": float(low), "ci_high": float(high), "n_problems": len(ids)}


def paired(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]]) -> dict[str, float]:
    """Accuracy of a and b on their common problems and the paired bootstrap of a - b (points)."""
    from s1kit.eval.metrics import paired_bootstrap

    ids = sorted(set(a) & set(b))
    sa, sb = [a[i]["correct"] for i in ids], [b[i]["correct"] for i in ids]
    diff = paired_bootstrap(sa, sb, n_boot=N_BOOT, seed=0)
    return {"n": len(ids), "acc_a": 100 * float(np.mean(sa)), "acc_b": 100 * float(np.mean(sb)),
            "diff": 100 * diff.mean_diff, "ci_low": 100 * diff.low, "ci_high": 100 * diff.high, "p_value": diff.p_value}


def accuracy_ci(table: dict[str, dict[str, float]]) -> dict[str, float]:
    from s1kit.eval.metrics import bootstrap_ci

    ci = bootstrap_ci([v["correct"] for v in table.values()], n_boot=N_BOOT, seed=0)
    return {"n": len(table), "acc": 100 * ci.mean, "ci_low": 100 * ci.low, "ci_high": 100 * ci.high}


def findings(ctx: dict[str, Any]) -> dict[str, Any]:
    """Every number the report states, computed from the stages' sample files."""
    cfg, budgets, evals = ctx["cfg"], ctx["budgets"], ctx["evals"]
    main = read_samples(evals["s1k"]["samples"])
    methods = evals["s1k"]["summary"]["methods"]
    full = per_problem(main, budget=budgets["full"])
    out: dict[str, Any] = {
        "control": methods["budget_forcing"]["control"],
        "scaling": scaling_ci(main, [b for b in budgets["caps"]]),
        "methods": {name: {"control": m["control"], "scaling_per_1k_tokens": m["scaling_per_1k_tokens"],
                           "performance": m["performance"]} for name, m in methods.items()},
        "sft_full": accuracy_ci(full),
        "base": {}, "ablations": {},
    }
    for name in ("base_small", "base_large"):
        base = per_problem(read_samples(evals[name]["samples"]), budget=None)
        base = {i: v for i, v in base.items()}
        out["base"][name] = {**accuracy_ci(base), "sft_vs_base": paired(full, base)}
    for sel in cfg.ablations:
        other = per_problem(read_samples(evals[sel]["samples"]), budget=budgets["full"])
        out["ablations"][sel] = {**accuracy_ci(other), "s1k_vs": paired(full, other)}
    out["base_loss"] = (ctx.get("bases") or {}).get("base_large", {}).get("final_loss")
    out["waits"] = wait_effects(main, budgets["full"], [w for w in cfg.waits if w > 0])
    out["curve"] = curve_dips(main, budgets["caps"])
    out["sequential_vs_parallel"] = sequential_vs_parallel(main, budgets["full"])
    return out


# ---------------------------------------------------------------------------------------------
# test-time scaling: Waits, the curve, sequential vs parallel
# ---------------------------------------------------------------------------------------------

WAIT_TOLERANCE = 3.0  # points: "full + 1 Wait >= full - 3" and "every cap >= the previous cap - 3"
BASE_LOSS_LEARNED = 0.03
"""The large base's final pre-training loss below which it had learned the steps in every measured run
(0.0125-0.021; the runs that had not: 0.038 and 0.051, docs/learnability.md findings 8 and 12): above
it, SFT has nothing to elicit and the other findings say little about budget forcing."""


def wait_effects(samples: list[dict[str, Any]], full: int, waits: list[int]) -> dict[str, Any]:
    """Per number of forced Waits at the full cap: paired difference to full, and the share of
    the problems correct at full that stay correct (kept) and of the wrong ones made right (fixed)."""
    from s1kit.eval.metrics import bootstrap_ci

    base = per_problem(samples, budget=full)
    out: dict[str, Any] = {}
    for w in waits:
        more = per_problem(samples, budget=full, waits=w)
        if not more:
            continue
        ids = sorted(set(base) & set(more))
        right = [more[i]["correct"] for i in ids if base[i]["correct"]]
        wrong = [more[i]["correct"] for i in ids if not base[i]["correct"]]
        share = {}
        for name, values in (("kept", right), ("fixed", wrong)):
            ci = bootstrap_ci(values, n_boot=N_BOOT, seed=0) if values else None
            share[name] = {"n": len(values), "count": int(sum(values)),
                           "share": 100 * ci.mean if ci else float("nan"),
                           "ci_low": 100 * ci.low if ci else float("nan"),
                           "ci_high": 100 * ci.high if ci else float("nan")}
        tokens = float(np.mean([more[i]["tokens"] for i in ids]))
        out[str(w)] = {"vs_full": paired(more, base), "mean_thinking_tokens": tokens, **share}
    return out


def curve_dips(samples: list[dict[str, Any]], caps: list[int]) -> dict[str, Any]:
    """The waits=0 curve in cap order: the worst paired difference of a cap to cap 0 (the lowest
    cap) and of a cap to the previous one (negative: a dip)."""
    tables = [(c, per_problem(samples, budget=c)) for c in sorted(caps)]
    tables = [(c, t) for c, t in tables if t]
    if len(tables) < 2:
        return {}
    first_cap, first = tables[0]
    below_first = [{"cap": c, "vs": first_cap, **paired(t, first)} for c, t in tables[1:]]
    below_prev = [{"cap": c, "vs": pc, **paired(t, pt)} for (pc, pt), (c, t) in zip(tables, tables[1:])]
    return {"lowest_cap": first_cap,
            "worst_below_lowest": min(below_first, key=lambda d: d["diff"]),
            "worst_below_previous": min(below_prev, key=lambda d: d["diff"]),
            "accuracy": {str(c): 100 * float(np.mean([v["correct"] for v in t.values()])) for c, t in tables}}


def majority_per_problem(samples: list[dict[str, Any]], k: int) -> dict[str, dict[str, float]]:
    """{id: {'correct': maj@k, 'tokens': thinking tokens of the first k samples}} (majority voting)."""
    from s1kit.eval.metrics import maj_at_k
    from s1kit.eval.summary import equivalent

    by_id: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        if s.get("method") == "majority_voting":
            by_id.setdefault(s["id"], []).append(s)
    out = {}
    for pid, rows in by_id.items():
        rows = sorted(rows, key=lambda s: s.get("sample") or 0)[:k]
        same = lambda a, b, kind=rows[0]["kind"]: equivalent(a, b, kind)  # noqa: E731
        out[pid] = {"correct": float(maj_at_k([s["extracted"] for s in rows], rows[0]["gold"], same)),
                    "tokens": float(sum(s.get("thinking_tokens") or 0 for s in rows))}
    return out


def sequential_vs_parallel(samples: list[dict[str, Any]], full: int) -> dict[str, Any]:
    """Budget forcing at the full cap (0 Waits) against majority voting over the number of samples
    whose average total thinking tokens is nearest to it (at least 1): sequential vs parallel
    scaling at matched compute (s1, Figure 4), paired per problem."""
    bf = per_problem(samples, budget=full)
    n = max((int(s.get("sample") or 0) + 1 for s in samples if s.get("method") == "majority_voting"), default=0)
    if not bf or not n:
        return {}
    bf_tokens = float(np.mean([v["tokens"] for v in bf.values()]))
    curve = {k: majority_per_problem(samples, k) for k in range(1, n + 1)}
    tokens = {k: float(np.mean([v["tokens"] for v in t.values()])) for k, t in curve.items()}
    k = min(tokens, key=lambda j: abs(tokens[j] - bf_tokens))
    return {"bf_tokens": bf_tokens, "k": k, "mv_tokens": tokens[k],
            "mv_curve": {str(j): {"tokens": tokens[j], "acc": 100 * float(np.mean([v["correct"] for v in t.values()]))}
                         for j, t in curve.items()},
            "bf_vs_mv": paired(bf, curve[k])}


# ---------------------------------------------------------------------------------------------
# the findings table, as data (rendered by the Markdown and the HTML report)
# ---------------------------------------------------------------------------------------------


def _row(key: str, finding: str, measured: str, ci: str, holds: bool | None, verdict: str | None = None
         ) -> dict[str, Any]:
    """``key``: the same finding in every run (seeds), although its text may hold numbers."""
    if verdict is None:
        verdict = "n/a" if holds is None else "holds" if holds else "does not hold"
    return {"key": key, "finding": finding, "measured": measured, "ci": ci, "verdict": verdict, "holds": holds}


def _ci(d: dict[str, float], low: str = "ci_low", high: str = "ci_high") -> str:
    return f"[{d[low]:.1f}, {d[high]:.1f}]"


def _vs(d: dict[str, float]) -> str:
    return f"{d['acc_a']:.1f}% vs {d['acc_b']:.1f}%: {d['diff']:+.1f}"


def finding_rows(f: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per finding of the paper checked at this scale: finding, measured, CI, verdict."""
    s = f["scaling"]
    rows = [_row("control", "budget forcing Control = 100%", f"{100 * f['control']:.1f}%", "",
                 f["control"] >= 0.999),
            _row("scaling", "accuracy rises with the thinking cap (Scaling, points per 1k tokens, CI low > 0)",
                 f"{s['scaling_per_1k']:.1f}", _ci(s), s["ci_low"] > 0)]
    for name, b in f["base"].items():
        d = b["sft_vs_base"]
        rows.append(_row(f"sft_vs_{name}", f"SFT model above the {name} model at full budget (CI low > 0)",
                         _vs(d), _ci(d), d["ci_low"] > 0))
    for sel, a in f["ablations"].items():
        d = a["s1k_vs"]
        verdict = ("s1K better" if d["ci_low"] > 0 else f"{sel} better" if d["ci_high"] < 0
                   else "no significant difference")
        rows.append(_row(f"s1k_vs_{sel}", f"s1K selection vs {sel}-1K (data ablation)",
                         _vs(d) + f", p={d['p_value']:.3f}", _ci(d), d["ci_low"] > 0, verdict))
    rows += _curve_rows(f.get("curve") or {}) + _wait_rows(f.get("waits") or {})
    if f.get("base_loss") is not None:
        rows.insert(0, _row("base_learned", f"precondition: the large base learned its corpus (final pre-training "
                            f"loss <= {BASE_LOSS_LEARNED:g}; above it, rerun with more base_steps)",
                            f"{f['base_loss']:.4f}", "", f["base_loss"] <= BASE_LOSS_LEARNED))
    sp = f.get("sequential_vs_parallel") or {}
    if sp:
        d = sp["bf_vs_mv"]
        rows.append(_row("bf_vs_mv", f"sequential beats parallel: budget forcing at full ({sp['bf_tokens']:.0f} "
                         f"thinking tokens) >= majority voting over {sp['k']} sample(s) ({sp['mv_tokens']:.0f} tokens)",
                         _vs(d), _ci(d), d["diff"] >= 0))
    return rows


def _curve_rows(c: dict[str, Any]) -> list[dict[str, Any]]:
    if not c:
        return []
    lo, prev = c["worst_below_lowest"], c["worst_below_previous"]
    return [_row("curve_vs_cap0", f"no cap below cap {c['lowest_cap']} (worst: cap {lo['cap']} - cap {lo['vs']})",
                 _vs(lo), _ci(lo), lo["diff"] >= 0),
            _row("curve_vs_previous", f"every cap >= the previous cap - {WAIT_TOLERANCE:g} points "
                 f"(worst: cap {prev['cap']} - cap {prev['vs']})", _vs(prev), _ci(prev),
                 prev["diff"] >= -WAIT_TOLERANCE)]


def _wait_rows(waits: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for w, e in waits.items():
        d = e["vs_full"]
        plural = "s" if w != "1" else ""
        rows.append(_row(f"wait{w}_no_harm", f"full + {w} Wait{plural} >= full - {WAIT_TOLERANCE:g} points (paired)",
                         _vs(d), _ci(d), d["diff"] >= -WAIT_TOLERANCE))
        effect = "helps" if d["ci_low"] > 0 else "hurts" if d["ci_high"] < 0 else "no significant difference"
        rows.append(_row(f"wait{w}_helps", f"full + {w} Wait{plural} > full (CI low > 0)", _vs(d), _ci(d),
                         d["ci_low"] > 0, effect))
        for name, what in (("kept", "correct answers kept"), ("fixed", "wrong answers fixed")):
            v = e[name]
            rows.append(_row(f"wait{w}_{name}", f"after {w} forced Wait{plural}: share of {what}",
                             f"{v['share']:.1f}% ({v['count']}/{v['n']})", _ci(v), None, "measured"))
    return rows


def rows_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The findings table in Markdown (verdicts in bold)."""
    out = ["| finding | measured | 95% CI | verdict |", "|---|---|---|---|"]
    out += [f"| {r['finding']} | {r['measured']} | {r['ci'] or '-'} | **{r['verdict']}** |" for r in rows]
    return out
