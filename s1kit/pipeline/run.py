"""The embedded default: the whole s1 pipeline on a CPU, through the real stages.

    s1kit run recipes/tiny.yaml            # ~18 min on 2 cores; the report path is printed
    s1kit run recipes/tiny.yaml --smoke    # a small version in a few minutes (the tests run it)

Stages, each a folder under ``output_dir`` with a ``stage.json`` (parameters, upstream hashes,
outputs, seconds); a rerun skips every stage whose parameters and inputs are unchanged, resumes
a stage that was interrupted (``stage.pending.json``), and clears a stage folder whose parameters
changed before running it again (so no resumable step inside picks up rows of the old ones):

1. ``pool``: synthetic questions of the configured families with the programmatic teacher's
   traces (s1kit.synth), and the evaluation set (the ``synth`` benchmark of s1kit.eval).
2. ``base_small`` / ``base_large``: tiny Qwen2 base models pre-trained from scratch by
   ``s1kit train`` on the pool as direct chat answers and worked examples (the analogue of
   Qwen2.5-7B/32B-Instruct: they answer directly, without a thinking phase).
3. ``curate``: ``s1kit curate`` over the pool: decontaminate against the evaluation set, dedup,
   quality (teacher-incorrect traces dropped), difficulty (questions a base model already
   answers, run through ``s1kit generate`` and graded), domains (the family), s1K selection;
   plus one selection per ablation (random-1K, ...).
4. ``sft_<selection>``: ``s1kit train`` from the large base on each selection (5 epochs, s1's
   schedule: cosine, warmup 5%, AdamW β=(0.9, 0.95), weight decay 1e-4).
5. ``eval_*``: ``s1kit eval`` on the evaluation set: a budget-forcing sweep (caps × Waits) from
   one shared-prefix run, majority voting and rejection sampling for the s1K model; the full
   budget for the ablation models; the base models without thinking.
6. ``report``: Markdown + HTML + PNGs (s1kit.pipeline.report).
"""

from __future__ import annotations

import json
import logging
import shutil
import statistics
import time
from pathlib import Path
from typing import Any, Callable

from s1kit.pipeline.config import RunConfig

log = logging.getLogger(__name__)

CORPUS_FORMAT = 5
"""The base corpus's rendering (s1kit.synth.render.render_worked): part of the base stages' key."""


# ---------------------------------------------------------------------------------------------
# stage cache
# ---------------------------------------------------------------------------------------------


class Stages:
    """Runs named stages once: a stage whose params (including its upstream stages' keys) match
    its ``stage.json`` is skipped and its recorded outputs are returned (s1kit.stagecache)."""

    def __init__(self, root: Path):
        self.root = root
        self.done: dict[str, dict[str, Any]] = {}
        self.skipped: list[str] = []

    def key(self, params: dict[str, Any], upstream: list[str]) -> str:
        from s1kit.stagecache import settings_key

        return settings_key({"params": params, "upstream": [self.done[u]["key"] for u in upstream]}, length=16)

    def finished(self, name: str, params: dict[str, Any], upstream: list[str]) -> dict[str, Any] | None:
        """The stage's record if it finished with these params (by this process or another), else None."""
        from s1kit.stagecache import StageRecord

        return StageRecord(self.root / name).finished(self.key(params, upstream))

    def adopt(self, name: str, params: dict[str, Any], upstream: list[str]) -> dict[str, Any]:
        """The outputs of a stage another process has just finished (read from its stage.json)."""
        record = self.finished(name, params, upstream)
        if record is None:
            raise RuntimeError(f"stage {name}: no finished record in {self.root / name}")
        self.done[name] = record
        return record["outputs"]

    def run(self, name: str, params: dict[str, Any], upstream: list[str], fn: Callable[[Path], dict[str, Any]]
            ) -> dict[str, Any]:
        from s1kit.stagecache import StageRecord

        folder = self.root / name
        cache = StageRecord(folder)
        key = self.key(params, upstream)
        record = cache.finished(key)
        if record is not None:
            log.info("stage %s: unchanged, reusing %s", name, folder)
            self.skipped.append(name)
            self.done[name] = record
            return record["outputs"]
        if cache.stale(key):
            # outputs of other parameters: resumable steps inside the stage (eval samples, ...)
            # would otherwise pick up their rows
            log.info("stage %s: parameters changed, clearing %s", name, folder)
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        cache.start(key, params)
        log.info("stage %s: running", name)
        start = time.perf_counter()
        outputs = fn(folder)
        record = {"key": key, "params": params, "upstream": upstream, "outputs": outputs,
                  "seconds": round(time.perf_counter() - start, 1)}
        cache.finish(record)
        self.done[name] = record
        return outputs


# ---------------------------------------------------------------------------------------------
# stages
# ---------------------------------------------------------------------------------------------


def eval_benchmark(cfg: RunConfig) -> str:
    return "synth:" + "+".join(cfg.families)


def stage_pool(cfg: RunConfig, folder: Path) -> dict[str, Any]:
    """The question pool with teacher traces, and the evaluation set (to decontaminate against)."""
    from s1kit.data.rows import write_jsonl
    from s1kit.data.sources import synth_rows, SourceConfig
    from s1kit.eval.benchmarks import load_synth

    rows = synth_rows(SourceConfig.from_dict(_pool_source(cfg)))
    write_jsonl(folder / "pool.jsonl", rows)
    # the base models' pre-training documents come from another seed: the questions SFT selects
    # were not seen as worked examples (as a real base model has not seen s1K's solutions)
    corpus = synth_rows(SourceConfig.from_dict(_pool_source(cfg, sft=False)))
    write_jsonl(folder / "base_corpus_pool.jsonl", corpus)
    eval_rows = load_synth(eval_benchmark(cfg), cfg.eval_per_family, cfg.eval_seed, cfg.eval_levels)
    write_jsonl(folder / "eval_set.jsonl", eval_rows)
    return {"pool": str(folder / "pool.jsonl"), "base_corpus_pool": str(folder / "base_corpus_pool.jsonl"),
            "eval_set": str(folder / "eval_set.jsonl"), "pool_rows": len(rows),
            "teacher_incorrect": sum(1 for r in rows if r.get("teacher_correct") is False),
            "eval_rows": len(eval_rows)}


def _pool_source(cfg: RunConfig, sft: bool = True) -> dict[str, Any]:
    """The synth source of the SFT pool (``sft``) or of the base corpus (its own seed, no pool overrides)."""
    rates = {k: getattr(cfg, k) for k in ("check_rate", "correction_rate") if getattr(cfg, k) is not None}
    if sft and cfg.pool_correction_rates:
        rates["family_correction_rates"] = cfg.family_correction_rates()
    return {"synth": ",".join(cfg.families), "n": cfg.pool_per_family, "seed": cfg.seed if sft else cfg.seed + 1,
            "mistake_rate": cfg.mistake_rate, **rates}


def stage_base(cfg: RunConfig, spec: str, steps: int, pool_path: str, folder: Path) -> dict[str, Any]:
    """Pre-train a tiny base model on direct chat answers + worked examples (s1kit train)."""
    from s1kit.data.rows import iter_jsonl, write_jsonl
    from s1kit.synth.teacher import base_corpus

    corpus = base_corpus(iter_jsonl(pool_path), worked_share=cfg.base_worked_share, seed=cfg.seed)
    data = folder / "corpus.jsonl"
    write_jsonl(data, ({"id": f"c{i}", "prompt": p, "completion": c, "kind": k} for i, (p, c, k) in enumerate(corpus)))
    model_dir = folder / "model"
    manifest = _train(cfg, model=spec, dataset=str(data), output_dir=model_dir, lr=cfg.base_lr,
                      max_steps=steps, data_format="prompt_completion")
    return {"model": str(model_dir), "corpus_rows": len(corpus), "final_loss": manifest.get("final_loss"),
            "train_seconds": manifest.get("seconds")}


def _train(cfg: RunConfig, model: str, dataset: str, output_dir: Path, lr: float, max_steps: int | None = None,
           epochs: float = 1.0, data_format: str = "s1") -> dict[str, Any]:
    from s1kit.train import TrainConfig
    from s1kit.train.sft import run_train

    tcfg = TrainConfig(model=model, dataset=dataset, data_format=data_format, output_dir=str(output_dir),
                       learning_rate=lr, max_steps=max_steps or -1, num_train_epochs=epochs,
                       lr_scheduler_type="cosine", warmup_ratio=0.05, adam_beta1=0.9, adam_beta2=0.95,
                       weight_decay=1e-4, per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=1,
                       max_length=cfg.block_size, truncate_or_drop="drop", use_cpu=True, seed=cfg.seed,
                       save_steps=0, resume=None, logging_steps=50, report_to="none", chat_template="chatml")
    manifest = run_train(tcfg)
    curve = manifest.get("loss_curve") or []
    return {**manifest, "final_loss": curve[-1]["loss"] if curve else None}


def stage_curate(cfg: RunConfig, pool: dict[str, Any], solvers: list[str], folder: Path) -> dict[str, Any]:
    """s1kit curate over the pool; one extra selection per ablation (only the select stage reruns)."""
    from dataclasses import replace

    from s1kit.data.curate import CurateConfig, curate_report, run_curate

    ccfg = CurateConfig(output_dir=str(folder), name="s1k", sources=(_pool_source(cfg),),
                        benchmarks=(pool["eval_set"],), ngram=8, teacher="none",
                        quality={"require_teacher_correct": True}, tokenizer="chars", solvers=tuple(solvers),
                        solver_max_thinking_tokens=None, solver_max_answer_tokens=16,
                        solver_batch_size=cfg.eval_batch_size, domains="auto", select_method="s1k",
                        n=cfg.select_n, seed=cfg.seed, select_half_life=cfg.select_half_life, parquet=False,
                        force=True, progress=cfg.progress)
    run_curate(ccfg)
    funnel_md, _ = curate_report(ccfg)
    outputs = {"s1k": str(folder / "s1k.jsonl"), "funnel_md": funnel_md, "funnel": _funnel_counts(ccfg)}
    for method in cfg.ablations:
        run_curate(replace(ccfg, name=f"{method}1k", select_method=method, stages=("select",), force=True,
                           select_from="" if cfg.ablation_from == "domains" else cfg.ablation_from))
        outputs[method] = str(folder / f"{method}1k.jsonl")
    outputs["selection_stats"] = {name: _selection_stats(outputs[name]) for name in ("s1k", *cfg.ablations)}
    return outputs


def _funnel_counts(ccfg) -> list[dict[str, Any]]:
    """(stage, in, out, drops) for every curation stage that ran, from its manifest."""
    from s1kit.data.curate import STAGES, read_manifest, stage_output
    from s1kit.data.manifest import manifest_path

    out = []
    for stage in STAGES:
        path = manifest_path(stage_output(ccfg, stage))
        if path.exists():
            m = read_manifest(path)
            out.append({"stage": stage, "in": m.count_in, "out": m.count_out, "drops": dict(m.drops)})
    return out


def _selection_stats(path: str) -> dict[str, Any]:
    from collections import Counter

    from s1kit.data.rows import iter_jsonl

    rows = list(iter_jsonl(path))
    lengths = sorted(len(r["thinking"]) + 2 for r in rows)  # bytes tokenizer: one token per ASCII character
    metas = [_metadata(r) for r in rows]
    return {"rows": len(rows), "median_trace_tokens": statistics.median(lengths) if lengths else 0,
            "length_deciles": [lengths[min(len(lengths) - 1, int(q * len(lengths)))] for q in
                               (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)] if lengths else [],
            "checks": dict(sorted(Counter(str(m.get("checks", 0)) for m in metas).items())),
            "corrected": sum(1 for m in metas if m.get("corrected")),
            "max_trace_tokens": max(lengths, default=0), "domains": dict(Counter(r.get("domain") for r in rows)),
            "lengths": lengths}


def _metadata(row: dict[str, Any]) -> dict[str, Any]:
    """A selected row's metadata (curate writes it as a JSON string, s1K's schema)."""
    meta = row.get("metadata") or {}
    return json.loads(meta) if isinstance(meta, str) else meta


def stage_sft(cfg: RunConfig, base_model: str, dataset: str, folder: Path) -> dict[str, Any]:
    model_dir = folder / "model"
    manifest = _train(cfg, model=base_model, dataset=dataset, output_dir=model_dir, lr=cfg.sft_lr, epochs=cfg.sft_epochs)
    return {"model": str(model_dir), "final_loss": manifest.get("final_loss"), "train_seconds": manifest.get("seconds")}


def budgets_for(cfg: RunConfig, stats: dict[str, Any]) -> dict[str, Any]:
    """Thinking caps as fractions of the selected set's median trace, plus the 'full' cap."""
    median, longest = stats["median_trace_tokens"], stats["max_trace_tokens"]
    caps = sorted({int(round(f * median)) for f in cfg.cap_fractions})
    if cfg.cap_quantiles:  # caps from the distribution of the selected traces' lengths
        lengths = stats["lengths"]
        caps = sorted({0 if q == 0 else lengths[min(len(lengths) - 1, int(q * len(lengths)))] for q in cfg.cap_quantiles})
    # smoke runs cap 'full' below the longest trace: an untrained model thinks until the cap
    full = int(cfg.full_budget_factor * longest) + (0 if cfg.smoke else 16)
    rejection = sorted({max(1, int(round(f * median))) for f in cfg.rejection_fractions})
    return {"caps": [c for c in caps if c < full] + [full], "full": full, "rejection": rejection,
            "median": median}


def stage_eval(cfg: RunConfig, model: str, folder: Path, budgets: list[int] | None, waits: tuple[int, ...] = (0,),
               majority_n: int = 0, majority_budget: int | None = None, rejection: list[int] = ()) -> dict[str, Any]:
    """s1kit eval on the synthetic evaluation set; budgets None: plain generation (base models)."""
    from s1kit.eval.run import EvalConfig, run_eval
    from s1kit.forcing import BudgetPolicy

    ecfg = EvalConfig(model=model, benchmarks=(eval_benchmark(cfg),), synth_n=cfg.eval_per_family,
                      synth_seed=cfg.eval_seed, synth_levels=cfg.eval_levels, budgets=tuple(str(b) for b in budgets or ()),
                      waits=tuple(str(w) for w in waits), majority_n=majority_n,
                      majority_temperature=cfg.majority_temperature, majority_budget=majority_budget,
                      rejection_budgets=tuple(str(b) for b in rejection),
                      rejection_max_attempts=cfg.rejection_max_attempts, output_dir=str(folder),
                      chat_template="chatml", batch_size=cfg.eval_batch_size, device="cpu", progress=cfg.progress)
    policy = BudgetPolicy.preset("s1", forced_answer_prefix=cfg.forced_answer_prefix, max_answer_tokens=16,
                                 max_thinking_tokens=(max(budgets) if budgets else None))
    results = run_eval(ecfg, policy)
    return {"results": str(folder / "results.json"), "samples": str(folder / "samples.jsonl"),
            "report": str(folder / "report.md"),
            "summary": results["benchmarks"][eval_benchmark(cfg)]}


# ---------------------------------------------------------------------------------------------
# orchestration
# ---------------------------------------------------------------------------------------------


def _base_params(cfg: RunConfig, spec: str, steps: int) -> dict[str, Any]:
    # keyed on the base corpus's own source, not on the pool's: pool-only settings keep the bases
    return {"spec": spec, "worked": cfg.base_worked_share, "corpus": CORPUS_FORMAT, "steps": steps, "lr": cfg.base_lr,
            "batch": cfg.batch_size, "block": cfg.block_size, "seed": cfg.seed,
            "corpus_source": _pool_source(cfg, sft=False)}


def _run_bases(st: Stages, cfg: RunConfig, pool: dict[str, Any]) -> dict[str, Any]:
    """base_small in a second process beside base_large (s1kit.pipeline.beside)."""
    from s1kit.pipeline.beside import side_by_side

    corpus = pool["base_corpus_pool"]
    small = ("base_small", _base_params(cfg, cfg.base_small, cfg.base_small_steps), [], stage_base,
             (cfg.base_small, cfg.base_small_steps, corpus))
    large, small_out = side_by_side(st, cfg, small, lambda: st.run(
        "base_large", _base_params(cfg, cfg.base_large, cfg.base_steps), [],
        lambda d: stage_base(cfg, cfg.base_large, cfg.base_steps, corpus, d)))
    return {"base_small": small_out, "base_large": large}


def _run_sft(st: Stages, cfg: RunConfig, bases: dict[str, Any], curated: dict[str, Any]) -> dict[str, Any]:
    """SFT on s1K and on each ablation; the first ablation in a second process beside s1K's."""
    from s1kit.pipeline.beside import side_by_side

    params = {"epochs": cfg.sft_epochs, "lr": cfg.sft_lr, "batch": cfg.batch_size, "block": cfg.block_size}
    upstream, base = ["base_large", "curate"], bases["base_large"]["model"]

    def one(sel: str) -> dict[str, Any]:
        return st.run(f"sft_{sel}", params, upstream, lambda d: stage_sft(cfg, base, curated[sel], d))

    if not cfg.ablations:
        return {"s1k": one("s1k")}
    first = cfg.ablations[0]
    side = (f"sft_{first}", params, upstream, stage_sft, (base, curated[first]))
    s1k, side_out = side_by_side(st, cfg, side, lambda: one("s1k"))
    return {"s1k": s1k, first: side_out, **{sel: one(sel) for sel in cfg.ablations[1:]}}


def run_pipeline(cfg: RunConfig) -> Path:
    """Every stage in order (finished ones reused); returns the path of the HTML report."""
    import torch

    from s1kit.pipeline.report import write_report

    torch.set_num_threads(cfg.threads)
    root = cfg.root
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    st = Stages(root)
    t0 = time.perf_counter()
    pool = st.run("pool", {"source": _pool_source(cfg), "eval": [cfg.eval_per_family, cfg.eval_seed, list(cfg.eval_levels)],
                           "base_corpus": _pool_source(cfg, sft=False)}, [],
                  lambda d: stage_pool(cfg, d))
    bases = _run_bases(st, cfg, pool)
    cur_params = {"n": cfg.select_n, "seed": cfg.seed, "ablations": list(cfg.ablations),
                  "half_life": cfg.select_half_life, "ablation_from": cfg.ablation_from}
    curated = st.run("curate", cur_params, ["pool", "base_small", "base_large"],
                     lambda d: stage_curate(cfg, pool, [bases["base_small"]["model"], bases["base_large"]["model"]], d))
    budgets = budgets_for(cfg, curated["selection_stats"]["s1k"])
    sft, evals = _run_sft(st, cfg, bases, curated), {}
    eval_common = {"n": cfg.eval_per_family, "seed": cfg.eval_seed, "levels": list(cfg.eval_levels), "prefix": cfg.forced_answer_prefix}
    main_params = {**eval_common, "budgets": budgets, "waits": list(cfg.waits), "majority_n": cfg.majority_n,
                   "majority_t": cfg.majority_temperature, "rejection_attempts": cfg.rejection_max_attempts}
    evals["s1k"] = st.run("eval_s1k", main_params, ["sft_s1k"], lambda d: stage_eval(
        cfg, sft["s1k"]["model"], d, budgets["caps"], cfg.waits, cfg.majority_n, budgets["full"], budgets["rejection"]))
    for sel in cfg.ablations:
        evals[sel] = st.run(f"eval_{sel}", {**eval_common, "budgets": [budgets["full"]]}, [f"sft_{sel}"],
                            lambda d, s=sel: stage_eval(cfg, sft[s]["model"], d, [budgets["full"]]))
    for name in ("base_small", "base_large"):
        evals[name] = st.run(f"eval_{name}", eval_common, [name],
                             lambda d, n=name: stage_eval(cfg, bases[n]["model"], d, None))
    seconds = {name: rec.get("seconds", 0.0) for name, rec in st.done.items()}
    context = {"cfg": cfg, "pool": pool, "bases": bases, "curated": curated, "budgets": budgets, "sft": sft,
               "evals": evals, "stage_seconds": seconds, "skipped": st.skipped,
               "wall_seconds": round(time.perf_counter() - t0, 1)}
    html = write_report(context, root / "report")
    log.info("report: %s", html)
    return html


def open_in_browser(path: Path) -> bool:
    """Open the report where a display is available; never blocks, never fails the run."""
    import os
    import webbrowser

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.name == "nt"
            or os.uname().sysname == "Darwin"):
        return False
    try:
        return webbrowser.open(path.resolve().as_uri())
    except webbrowser.Error as err:
        log.info("could not open a browser (%s); open %s yourself", err, path)
        return False
