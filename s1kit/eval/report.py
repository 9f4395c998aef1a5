"""Report of an eval run: the scaling plots (accuracy vs thinking tokens, 95% CI bands) and tables.

    write_report(results, Path("runs/eval"))
    # scaling.png                 budget forcing: one line per number of Waits (the paper's figure)
    # parallel_vs_sequential.png  budget forcing vs majority voting vs rejection sampling
    # report.md, report.html      Control / Scaling / Performance per method, then each method's points
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from s1kit.eval.html import Block, Heading, Image, Para, Table, to_html, to_markdown


def write_report(results: dict[str, Any], out_dir: Path) -> None:
    plot_scaling(results, out_dir / "scaling.png")
    plot_parallel_vs_sequential(results, out_dir / "parallel_vs_sequential.png")
    doc = document(results)
    (out_dir / "report.md").write_text(to_markdown(doc), encoding="utf-8")
    (out_dir / "report.html").write_text(to_html(doc), encoding="utf-8")


def plot_scaling(results: dict[str, Any], path: Path) -> None:
    """One panel per benchmark; one line per number of Waits, CI as a band (the paper's figure)."""
    plt = _pyplot()
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


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("plots need matplotlib: pip install 's1kit[eval]'") from err
    return plt


def plot_parallel_vs_sequential(results: dict[str, Any], path: Path) -> None:
    """One panel per benchmark: accuracy against average thinking tokens per problem for budget
    forcing (sequential; one line per number of Waits), majority voting (parallel; total tokens
    of the k votes) and rejection sampling, each with its 95% CI band."""
    plt = _pyplot()
    benches = results["benchmarks"]
    fig, axes = plt.subplots(1, max(1, len(benches)), figsize=(5.5 * max(1, len(benches)), 4.2), squeeze=False)
    for ax, (bench, res) in zip(axes[0], sorted(benches.items())):
        for label, pts in _curves(res.get("methods", {})):
            pts = sorted(pts, key=lambda p: p["mean_thinking_tokens"])
            x = [p["mean_thinking_tokens"] for p in pts]
            (line,) = ax.plot(x, [100 * p["accuracy"] for p in pts], marker="o", label=label)
            ax.fill_between(x, [100 * p["ci_low"] for p in pts], [100 * p["ci_high"] for p in pts],
                            alpha=0.15, color=line.get_color())
        ax.set_title(f"{bench}\nparallel vs sequential scaling", fontsize=10)
        ax.set_xlabel("average thinking tokens per problem")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _curves(methods: dict[str, Any]):
    """(legend label, points) for each line of the parallel-vs-sequential plot."""
    bf = methods.get("budget_forcing")
    if bf:
        for waits in sorted({p["waits"] for p in bf["points"]}):
            yield f"{bf['label']} ({waits} Wait(s))", [p for p in bf["points"] if p["waits"] == waits]
    if "majority_voting" in methods:
        yield "majority voting (maj@k)", methods["majority_voting"]["points"]
    if "rejection_sampling" in methods:
        yield "rejection sampling", methods["rejection_sampling"]["points"]


def document(results: dict[str, Any]) -> list[Block]:
    """The report's blocks (rendered to Markdown and to the HTML page)."""
    doc: list[Block] = [Heading("Evaluation report"), Image("scaling.png", "scaling"),
                        Image("parallel_vs_sequential.png", "parallel vs sequential")]
    for bench, res in sorted(results["benchmarks"].items()):
        source = results.get("datasets", {}).get(bench)
        doc.append(Heading(bench, 2))
        if source:
            doc.append(Para([f"Data: {source['source']} @ {source['revision']} · {source['rows']} problems · "
                             f"sha256 {source['sha256'][:12]}"]))
        methods = res.get("methods", {})
        rows = []
        for m in methods.values():
            scal = m["scaling_per_1k_tokens"]
            rows.append([m["label"], f"{100 * m['control']:.1f}", "n/a" if scal is None else f"{100 * scal:.2f}",
                         f"{100 * m['performance']:.1f}"])
        doc.append(Table(["method", "Control %", "Scaling (points / 1k thinking tokens)", "Performance %"], rows))
        for name, m in methods.items():
            doc += [Heading(m["label"], 3), _METHOD_TABLES[name](m["points"])]
    return doc


def markdown(results: dict[str, Any]) -> str:
    return to_markdown(document(results))


def _ci(p: dict[str, Any]) -> str:
    return f"{100 * p['accuracy']:.1f} [{100 * p['ci_low']:.1f}, {100 * p['ci_high']:.1f}]"


def _budget_forcing_table(points: list[dict[str, Any]]) -> Table:
    header = ["budget", "waits", "n", "accuracy % [95% CI]", "mean thinking", "median", "capped %", "mean waits",
              "unparsable"]
    return Table(header, [[str(p["budget"]), str(p["waits"]), str(p["n"]), _ci(p), f"{p['mean_thinking_tokens']:.1f}",
                           f"{p['median_thinking_tokens']:.0f}", f"{100 * p['forced_end_share']:.0f}",
                           f"{p['mean_waits']:.2f}", str(p["unparsable"])] for p in points])


def _majority_table(points: list[dict[str, Any]]) -> Table:
    header = ["k", "n", "maj@k accuracy % [95% CI]", "thinking tokens per problem (k samples)", "unparsable votes"]
    return Table(header, [[str(p["k"]), str(p["n"]), _ci(p), f"{p['mean_thinking_tokens']:.1f}", str(p["unparsable"])]
                          for p in points])


def _rejection_table(points: list[dict[str, Any]]) -> Table:
    header = ["budget", "n", "accuracy % [95% CI]", "kept", "none fit", "mean attempts", "max attempts",
              "mean thinking (kept)", "unparsable"]
    return Table(header, [[str(p["budget"]), str(p["n"]), _ci(p), str(p["kept"]), str(p["none_fit"]),
                           f"{p['mean_attempts']:.2f}", str(p["max_attempts"]), f"{p['mean_thinking_tokens']:.1f}",
                           str(p["unparsable"])] for p in points])


_METHOD_TABLES = {"budget_forcing": _budget_forcing_table, "majority_voting": _majority_table,
                  "rejection_sampling": _rejection_table}
