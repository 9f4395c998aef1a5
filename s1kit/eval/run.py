"""The eval stage: budget-forced generation on benchmarks, graded offline, whole curves in one run.

    s1kit eval --model PATH --benchmarks math500,aime24 --budgets 512,1024,2048,4096 --waits 0,1,2
    s1kit eval --model PATH --benchmarks math500 --data math500=local/math500.jsonl --limit 50

With ``--budgets`` every (budget, waits) point comes from one longest greedy run per problem
(:mod:`s1kit.eval.sweep`); without, one point with the policy's own cap. Each graded sample is
appended to ``<output_dir>/samples.jsonl`` as soon as its problem's chunk is done, so a killed
run resumes where it stopped (problems with every point present are skipped). At the end
``results.json`` (config, versions, dataset hashes, metrics with 95% bootstrap CIs, s1's Control /
Scaling / Performance), ``scaling.png`` and ``report.md`` are written from all samples.
"""

from __future__ import annotations

import json
import logging
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s1kit.forcing import BudgetPolicy
from s1kit.forcing.validation import ConfigError, check_choice, check_int

log = logging.getLogger(__name__)


def _doc(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class EvalConfig:
    """What to evaluate, on which budgets, and where results go."""

    model: str = field(default="", metadata=_doc("Local model folder or Hub id."))
    revision: str | None = field(default=None, metadata=_doc("Model revision (commit) to pin."))
    benchmarks: tuple[str, ...] = field(default=("math500",), metadata=_doc(
        "Benchmarks: aime24, aime25, math500, amc23, gpqa_diamond."))
    data: tuple[str, ...] = field(default=(), metadata=_doc("Local files as name=path (else the Hub)."))
    data_revision: str | None = field(default=None, metadata=_doc("Hub dataset revision to pin."))
    limit: int | None = field(default=None, metadata=_doc("First N problems of each benchmark."))
    budgets: tuple[str, ...] = field(default=(), metadata=_doc(
        "Thinking caps to sweep (one run gives all points); empty: the policy's max_thinking_tokens."))
    waits: tuple[str, ...] = field(default=("0",), metadata=_doc("Numbers of 'Wait' extensions to sweep."))
    output_dir: str = field(default="runs/eval", metadata=_doc("Where samples, results and plots go."))
    chat_template: str = field(default="auto", metadata=_doc("auto, chatml or none."))
    system_prompt: str | None = field(default=None, metadata=_doc("System turn for chat templates."))
    batch_size: int = field(default=8, metadata=_doc("Sequences decoded together."))
    device: str | None = field(default=None, metadata=_doc("cpu, cuda ... (default: cuda if present)."))
    dtype: str | None = field(default=None, metadata=_doc("float32, bfloat16 ... (default by device)."))
    grade_timeout_s: float = field(default=5.0, metadata=_doc("Per-sample math-verify timeout (seconds)."))
    progress: bool = field(default=True, metadata=_doc("Show progress bars."))

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("model", self.model, "a local model folder or a Hub id")
        check_choice("chat_template", self.chat_template, ("auto", "chatml", "none"))
        check_int("batch_size", self.batch_size, 1)
        if self.limit is not None:
            check_int("limit", self.limit, 1)
        for name, values in (("budgets", self.budgets), ("waits", self.waits)):
            if any(not str(v).isdigit() for v in values):
                raise ConfigError(name, list(values), "comma-separated integers >= 0")
        if not self.waits:
            raise ConfigError("waits", (), "at least one integer >= 0")
        for item in self.data:
            if "=" not in item:
                raise ConfigError("data", item, "name=path")

    def budget_list(self) -> list[int]:
        return [int(b) for b in self.budgets]

    def wait_list(self) -> list[int]:
        return [int(w) for w in self.waits]


def run_eval(cfg: EvalConfig, policy: BudgetPolicy, backend=None) -> dict[str, Any]:
    """Generate, grade and summarise every benchmark; returns the results dict (also on disk)."""
    from s1kit.eval.benchmarks import dataset_hash, load_benchmark
    from s1kit.eval.report import write_report

    out_dir = Path(cfg.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if backend is None:
        from s1kit.backends.hf import HFBackend

        backend = HFBackend.from_pretrained(cfg.model, revision=cfg.revision, batch_size=cfg.batch_size,
                                            device=cfg.device, dtype=cfg.dtype)
    samples_path = out_dir / "samples.jsonl"
    paths = dict(item.split("=", 1) for item in cfg.data)
    hashes = {}
    for name in cfg.benchmarks:
        rows = load_benchmark(name, paths.get(name), cfg.limit, cfg.data_revision)
        hashes[name] = dataset_hash(rows)
        _evaluate(cfg, policy, backend, rows, samples_path)
    samples = _read_samples(samples_path)
    results = summarise(samples, cfg, policy)
    results.update(config=_plain(cfg), policy=policy.to_dict(), dataset_hashes=hashes, versions=_versions())
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    write_report(results, out_dir)
    return results


def _evaluate(cfg: EvalConfig, policy: BudgetPolicy, backend, rows, samples_path: Path) -> None:
    from tqdm.auto import tqdm

    from s1kit.eval.sweep import sweep
    from s1kit.formats import render_prompt_ids
    from s1kit.generate import RowWriter

    budgets = cfg.budget_list() or [policy.max_thinking_tokens]
    if any(not isinstance(b, int) for b in budgets):
        raise ConfigError("budgets", budgets, "integers (give --budgets when max_thinking_tokens is 'auto')")
    waits = cfg.wait_list()
    done = _done_problems(load_done_points(samples_path), len(budgets) * len(waits))
    _drop_incomplete(samples_path, done)
    todo = [r for r in rows if (r["benchmark"], r["id"]) not in done]
    if len(todo) < len(rows):
        log.info("%s: %d of %d problems already done", rows[0]["benchmark"] if rows else "", len(rows) - len(todo), len(rows))
    if not todo:
        return
    prompts = [render_prompt_ids(backend.tokenizer, r["question"], cfg.chat_template, cfg.system_prompt) for r in todo]
    writer = RowWriter(samples_path)
    bar = tqdm(total=len(todo) * len(budgets) * len(waits), desc=f"eval {todo[0]['benchmark']}", unit="sample",
               disable=not cfg.progress)

    def on_point(pt, i: int, res) -> None:
        writer.write(sample_row(todo[i], pt.budget, pt.waits, res, cfg.grade_timeout_s))
        bar.update(1)

    try:
        sweep(backend, prompts, budgets, waits, policy, keys=[r["id"] for r in todo], on_point=on_point)
    finally:
        writer.close()
        bar.close()


def sample_row(problem: dict[str, Any], budget: int, waits: int, res, timeout_s: float) -> dict[str, Any]:
    """One graded sample; a grader failure is recorded with its reason, never fatal."""
    from s1kit.eval.grade import grade

    try:
        verdict = grade(res.text, problem["answer"], problem["kind"], timeout_s=timeout_s)
        graded = {"correct": verdict.correct, "grade_tier": verdict.tier, "extracted": verdict.extracted,
                  "grade_reason": verdict.reason}
    except Exception as err:  # the run goes on; the sample counts as incorrect, with the reason
        graded = {"correct": False, "grade_tier": "error", "extracted": None, "grade_reason": repr(err)}
    return {"benchmark": problem["benchmark"], "id": problem["id"], "budget": budget, "waits": waits,
            "gold": problem["answer"], "thinking": res.thinking_text, "answer_text": res.answer_text,
            "thinking_tokens": res.thinking_tokens, "answer_tokens": res.answer_tokens,
            "waits_injected": res.waits_injected, "forced_end": res.forced_end,
            "finish_reason": res.finish_reason, **graded}


def _drop_incomplete(path: Path, done: set[tuple[str, str]]) -> None:
    """Rewrite the samples keeping only problems with every point (and no torn line), so the
    problems a crash cut short are regenerated without duplicate rows."""
    if not path.exists():
        return
    keep = [r for r in _read_samples(path) if (r["benchmark"], r["id"]) in done]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in keep), encoding="utf-8")
    tmp.replace(path)


def load_done_points(path: Path) -> set[tuple[str, str, int, int]]:
    return {(r["benchmark"], r["id"], r["budget"], r["waits"]) for r in _read_samples(path)}


def _done_problems(points: set[tuple[str, str, int, int]], per_problem: int) -> set[tuple[str, str]]:
    counts: dict[tuple[str, str], int] = {}
    for bench, pid, _, _ in points:
        counts[(bench, pid)] = counts.get((bench, pid), 0) + 1
    return {key for key, n in counts.items() if n >= per_problem}


def _read_samples(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a torn last line from a crash; cut on the next write
    return rows


def summarise(samples: list[dict[str, Any]], cfg: EvalConfig, policy: BudgetPolicy) -> dict[str, Any]:
    """Per benchmark and point: accuracy with CI and thinking statistics; Control/Scaling/Performance."""
    from s1kit.eval.metrics import bootstrap_ci, control, performance, scaling, thinking_stats

    out: dict[str, Any] = {"benchmarks": {}}
    for bench in sorted({s["benchmark"] for s in samples}):
        rows = [s for s in samples if s["benchmark"] == bench]
        points = []
        for budget, waits in sorted({(s["budget"], s["waits"]) for s in rows}):
            pr = sorted((s for s in rows if s["budget"] == budget and s["waits"] == waits), key=lambda s: s["id"])
            ci = bootstrap_ci([float(s["correct"]) for s in pr], n_boot=2000, seed=0)
            stats = thinking_stats(pr)
            points.append({"budget": budget, "waits": waits, "n": len(pr), "accuracy": ci.mean,
                           "ci_low": ci.low, "ci_high": ci.high, **stats,
                           "control": control([s["thinking_tokens"] for s in pr], policy.min_thinking_tokens, budget),
                           "unparsable": sum(s["grade_tier"] == "unparsable" for s in pr)})
        curve = [(p["mean_thinking_tokens"], p["accuracy"]) for p in points]
        distinct = {round(t, 6) for t, _ in curve}
        scal = scaling(_dedupe(curve)) if len(distinct) >= 2 else None
        out["benchmarks"][bench] = {
            "points": points,
            "control": sum(p["control"] * p["n"] for p in points) / sum(p["n"] for p in points),
            "scaling_per_1k_tokens": scal.per_1k_tokens if scal else None,
            "performance": performance(curve),
        }
    return out


def _dedupe(curve: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points with equal mean thinking tokens are averaged (a slope between them is undefined)."""
    groups: dict[float, list[float]] = {}
    for tokens, acc in curve:
        groups.setdefault(round(tokens, 6), []).append(acc)
    return [(t, sum(a) / len(a)) for t, a in sorted(groups.items())]


def _plain(cfg: EvalConfig) -> dict[str, Any]:
    from s1kit.config import to_dict

    return to_dict(cfg)


def _versions() -> dict[str, str]:
    import torch
    import transformers

    import s1kit

    versions = {"s1kit": s1kit.__version__, "torch": torch.__version__, "transformers": transformers.__version__,
                "python": platform.python_version()}
    try:
        from importlib.metadata import version

        versions["math_verify"] = version("math-verify")
    except Exception:  # absent extra: recorded as such
        versions["math_verify"] = "not installed"
    return versions
