"""Report of an eval run: the scaling plot (accuracy vs thinking tokens, 95% CI bands) and tables.

    write_report(results, Path("runs/eval"))   # scaling.png, report.md, report.html
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any


def write_report(results: dict[str, Any], out_dir: Path) -> None:
    plot_scaling(results, out_dir / "scaling.png")
    text = markdown(results)
    (out_dir / "report.md").write_text(text, encoding="utf-8")
    (out_dir / "report.html").write_text(to_html(text), encoding="utf-8")


def plot_scaling(results: dict[str, Any], path: Path) -> None:
    """One panel per benchmark; one line per number of Waits, CI as a band (the paper's figure)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("plots need matplotlib: pip install 's1kit[eval]'") from err
    benches = results["benchmarks"]
    fig, axes = plt.subplots(1, max(1, len(benches)), figsize=(5 * max(1, len(benches)), 4), squeeze=False)
    for ax, (bench, res) in zip(axes[0], sorted(benches.items())):
        for waits in sorted({p["waits"] for p in res["points"]}):
            pts = sorted((p for p in res["points"] if p["waits"] == waits), key=lambda p: p["mean_thinking_tokens"])
            x = [p["mean_thinking_tokens"] for p in pts]
            ax.plot(x, [100 * p["accuracy"] for p in pts], marker="o", label=f"{waits} Wait(s)")
            ax.fill_between(x, [100 * p["ci_low"] for p in pts], [100 * p["ci_high"] for p in pts], alpha=0.2)
        ax.set_title(bench)
        ax.set_xlabel("average thinking tokens")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(results: dict[str, Any]) -> str:
    lines = ["# Evaluation report", "", "![scaling](scaling.png)", ""]
    for bench, res in sorted(results["benchmarks"].items()):
        scal = res["scaling_per_1k_tokens"]
        lines += [f"## {bench}", "",
                  f"Control {100 * res['control']:.1f}% · Scaling "
                  f"{'n/a' if scal is None else f'{100 * scal:.2f} points per 1k thinking tokens'} · "
                  f"Performance {100 * res['performance']:.1f}%", "",
                  "| budget | waits | n | accuracy % [95% CI] | mean thinking | median | capped % | mean waits | unparsable |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for p in res["points"]:
            lines.append(f"| {p['budget']} | {p['waits']} | {p['n']} | {100 * p['accuracy']:.1f} "
                         f"[{100 * p['ci_low']:.1f}, {100 * p['ci_high']:.1f}] | {p['mean_thinking_tokens']:.1f} | "
                         f"{p['median_thinking_tokens']:.0f} | {100 * p['forced_end_share']:.0f} | "
                         f"{p['mean_waits']:.2f} | {p['unparsable']} |")
        lines.append("")
    return "\n".join(lines)


def to_html(text: str) -> str:
    """A self-contained HTML page of the Markdown report (tables, headings, the plot)."""
    body, table = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not set("".join(cells)) <= set("-"):
                tag = "th" if not table else "td"
                table.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>")
            continue
        if table:
            body.append("<table border=1 cellpadding=4>" + "".join(table) + "</table>")
            table = []
        if line.startswith("!["):
            body.append('<img src="scaling.png" alt="scaling">')
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line:
            body.append(f"<p>{html.escape(line)}</p>")
    return "<!doctype html><meta charset=utf-8><title>s1kit report</title>" + "\n".join(body)
