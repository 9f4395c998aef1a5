"""The embedded default's report: does the paper's picture show up at this scale? Numbers with CIs.

    html = write_report(context, Path("runs/tiny/report"))   # report.md, report.html, *.png, report.json

Findings checked (each stated as holding or not, never assumed): budget forcing's Control is
100%; accuracy rises with the thinking cap (Scaling > 0, bootstrap CI over problems excluding
0); the SFT model beats the base model at full budget (paired bootstrap); the s1K selection
against the ablation selections (paired bootstrap, whichever way it comes out).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from s1kit.pipeline.findings import (N_BOOT, accuracy_ci, finding_rows, findings, paired,  # noqa: F401
                                     per_problem, read_samples, rows_markdown, scaling_ci)


# ---------------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------------


def plot_scaling(ctx: dict[str, Any], path: Path) -> None:
    """Accuracy against average thinking tokens: budget forcing (CI band), Waits, the baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = ctx["evals"]["s1k"]["summary"]["methods"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    bf = [p for p in methods["budget_forcing"]["points"] if p["waits"] == 0]
    x = [p["mean_thinking_tokens"] for p in bf]
    ax.plot(x, [100 * p["accuracy"] for p in bf], "o-", label="budget forcing (caps)")
    ax.fill_between(x, [100 * p["ci_low"] for p in bf], [100 * p["ci_high"] for p in bf], alpha=0.2)
    waits = [p for p in methods["budget_forcing"]["points"] if p["waits"] > 0 and p["budget"] == ctx["budgets"]["full"]]
    if waits:
        ax.plot([p["mean_thinking_tokens"] for p in waits], [100 * p["accuracy"] for p in waits], "s",
                label="full cap + 'Wait' x" + ",".join(str(p["waits"]) for p in waits))
    for name, style in (("majority_voting", "^--"), ("rejection_sampling", "v:")):
        if name in methods:
            pts = methods[name]["points"]
            xs = [p.get("mean_thinking_tokens") or 0 for p in pts]
            ax.plot(xs, [100 * p["accuracy"] for p in pts], style, label=name.replace("_", " "))
            ax.fill_between(xs, [100 * p["ci_low"] for p in pts], [100 * p["ci_high"] for p in pts], alpha=0.1)
    ax.set_xlabel("average thinking tokens per problem")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Test-time scaling of the tiny s1 model (95% bootstrap CIs)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_comparison(f: dict[str, Any], path: Path) -> None:
    """Accuracy at full budget: base models, ablation selections, s1K (with CIs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = [(name, v) for name, v in f["base"].items()] + [(f"{k}-1K SFT", v) for k, v in f["ablations"].items()]
    bars.append(("s1K SFT", f["sft_full"]))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    acc = [v["acc"] for _, v in bars]
    err = np.array([[v["acc"] - v["ci_low"] for _, v in bars], [v["ci_high"] - v["acc"] for _, v in bars]])
    ax.bar([n for n, _ in bars], acc, yerr=err, capsize=4, color="#4c78a8")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Full thinking budget (base models answer directly)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# text
# ---------------------------------------------------------------------------------------------


def _pct(v: dict[str, float]) -> str:
    return f"{v['acc']:.1f}% [{v['ci_low']:.1f}, {v['ci_high']:.1f}]"


def _verdict(ok: bool) -> str:
    return "**holds**" if ok else "**does not hold**"


def markdown(ctx: dict[str, Any], f: dict[str, Any]) -> str:
    cfg = ctx["cfg"]
    s = f["scaling"]
    lines = [
        "# s1 at small scale: the embedded default",
        "",
        f"Families: {', '.join(cfg.families)}; pool {ctx['pool']['pool_rows']:,} questions; "
        f"evaluation set {ctx['pool']['eval_rows']} problems (difficulty level {'/'.join(map(str, cfg.eval_levels))} of 1-4, "
        f"seed {cfg.eval_seed}, decontaminated against). "
        f"Wall time of this invocation {ctx['wall_seconds'] / 60:.1f} min; stages in total "
        f"{sum(ctx['stage_seconds'].values()) / 60:.1f} min" + (" (some stages reused: " + ", ".join(ctx["skipped"]) + ")"
                                                            if ctx["skipped"] else "") + ".",
        "" if not cfg.smoke else "\n**Smoke run**: tiny sizes that test the plumbing; the numbers mean nothing.\n",
        "## The paper's findings at this scale",
        "",
        *rows_markdown(finding_rows(f)),
    ]
    lines += ["", "Differences are in accuracy points with 95% paired bootstrap CIs over problems.", "",
              "## Scaling curve", "", "![scaling](scaling.png)", "",
              "## Control / Scaling / Performance", "",
              "| method | Control | Scaling (points / 1k tokens) | Performance |", "|---|---|---|---|"]
    for name, m in f["methods"].items():
        scal = "n/a" if m["scaling_per_1k_tokens"] is None else f"{100 * m['scaling_per_1k_tokens']:.1f}"
        lines.append(f"| {name.replace('_', ' ')} | {100 * m['control']:.1f}% | {scal} | {100 * m['performance']:.1f}% |")
    lines += ["", "Budget-forcing points (cap, Waits):", "", "| cap | waits | avg thinking tokens | accuracy [95% CI] | forced end |",
              "|---|---|---|---|---|"]
    for p in ctx["evals"]["s1k"]["summary"]["methods"]["budget_forcing"]["points"]:
        lines.append(f"| {p['budget']} | {p['waits']} | {p['mean_thinking_tokens']:.1f} | {100 * p['accuracy']:.1f}% "
                     f"[{100 * p['ci_low']:.1f}, {100 * p['ci_high']:.1f}] | {100 * p.get('forced_end_share', 0):.0f}% |")
    lines += ["", f"Caps are fractions {list(cfg.cap_fractions)} of the median selected trace "
              f"({ctx['budgets']['median']} tokens) and 'full' = {ctx['budgets']['full']}.", "",
              "## Base models against the SFT model", "", "![comparison](comparison.png)", "",
              "| model | accuracy at full budget [95% CI] |", "|---|---|"]
    for name, b in f["base"].items():
        lines.append(f"| {name} (answers directly) | {_pct(b)} |")
    for sel, a in f["ablations"].items():
        lines.append(f"| SFT on {sel}-1K | {_pct(a)} |")
    lines.append(f"| SFT on s1K | {_pct(f['sft_full'])} |")
    lines += ["", "## Curation funnel", "", "| stage | in | out | drops |", "|---|---|---|---|"]
    for row in ctx["curated"]["funnel"]:
        drops = ", ".join(f"{k}: {v}" for k, v in row["drops"].items()) or "-"
        lines.append(f"| {row['stage']} | {row['in']:,} | {row['out']:,} | {drops} |")
    stats = ctx["curated"]["selection_stats"]
    lines += ["", "| selection | rows | median trace tokens | domains |", "|---|---|---|---|"]
    for name, st in stats.items():
        lines.append(f"| {name} | {st['rows']} | {st['median_trace_tokens']} | {st['domains']} |")
    lines += ["", "## Stages", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in ctx["stage_seconds"].items()]
    return "\n".join(lines) + "\n"


def write_report(ctx: dict[str, Any], out_dir: Path) -> Path:
    from s1kit.eval.html import markdown_to_html

    out_dir.mkdir(parents=True, exist_ok=True)
    f = findings(ctx)
    plot_scaling(ctx, out_dir / "scaling.png")
    plot_comparison(f, out_dir / "comparison.png")
    text = markdown(ctx, f)
    (out_dir / "report.md").write_text(text, encoding="utf-8")
    (out_dir / "report.json").write_text(json.dumps({"findings": f, "rows": finding_rows(f), "budgets": ctx["budgets"],
                                                     "stage_seconds": ctx["stage_seconds"],
                                                     "wall_seconds": ctx["wall_seconds"],
                                                     "config": ctx["cfg"].to_dict()}, indent=2, default=float))
    html = out_dir / "report.html"
    html.write_text(markdown_to_html(text), encoding="utf-8")
    return html
