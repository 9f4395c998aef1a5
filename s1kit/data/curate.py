"""The curation pipeline: collect → decontaminate → dedup → [distill] → quality → difficulty → domains → select.

    s1kit curate --config recipes/curate-synth.yaml                # the embedded default, offline
    s1kit curate --config recipes/curate-s1k.yaml                  # s1's 16 sources from the Hub
    s1kit curate --config recipes/curate-synth.yaml --stages select --select-method random --force true
    s1kit curate report --config recipes/curate-synth.yaml         # funnel → stdout and <output_dir>/funnel.md

Each stage reads the previous stage's JSONL, writes ``<output_dir>/NN-<stage>.jsonl``, its drops
(``.drops.jsonl``) and its manifest (``.manifest.json``: inputs hash, parameters, versions,
counts, per-reason drops). A stage whose manifest matches its input hash and parameters is
skipped and its output reused, so a rerun after a crash or a parameter change redoes only what
changed; ``--stages`` reruns chosen stages alone (on the stored output of the stage before).
The last stage also writes ``<output_dir>/<name>.jsonl`` (and ``.parquet``) with the s1K-1.1
columns plus ``id``/``thinking``/``attempt``, which ``s1kit train --dataset`` reads as is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from s1kit.data.manifest import StageManifest, funnel_markdown, manifest_path
from s1kit.data.rows import DropLog, Row, iter_jsonl, write_jsonl
from s1kit.data.s1k_columns import S1K_COLUMNS, s1k_row  # noqa: F401 - S1K_COLUMNS for callers
from s1kit.forcing.validation import ConfigError, check_choice, check_float, check_int

logger = logging.getLogger(__name__)

STAGES = ("collect", "decontaminate", "dedup", "distill", "quality", "difficulty", "domains", "select")
SELECT_METHODS = ("s1k", "random", "diverse", "longest", "full")


def _doc(text: str, cli: bool = True) -> dict[str, Any]:
    return {"help": text} if cli else {"help": text, "cli": False}


@dataclass
class CurateConfig:
    """Sources, stage parameters and where the stage outputs go."""

    output_dir: str = field(default="runs/curate", metadata=_doc("Folder for stage outputs and manifests."))
    name: str = field(default="s1k", metadata=_doc("Name of the final dataset file (<output_dir>/<name>.jsonl)."))
    sources: tuple[dict, ...] = field(default=(), metadata=_doc(
        "Recipe-only: list of sources (name/path/synth entries, see s1kit.data.sources).", cli=False))
    benchmarks: tuple[str, ...] = field(default=(), metadata=_doc(
        "Benchmark JSONL files or folders to decontaminate against (AIME24/25, MATH500, GPQA Diamond ...)."))
    ngram: int = field(default=8, metadata=_doc("Word n-gram length for decontamination."))
    dedup_threshold: float = field(default=0.8, metadata=_doc("MinHash Jaccard threshold for near duplicates."))
    near_dedup: bool = field(default=True, metadata=_doc("Also remove near duplicates (MinHash LSH)."))
    teacher: str = field(default="none", metadata=_doc(
        "none (rows already carry thinking/attempt, e.g. synth or cached) or distill (the recipe's distill: section)."))
    quality: dict = field(default_factory=dict, metadata=_doc(
        "Recipe-only: {disable: [rule names], rules: [{name, pattern, fields, ...}]}.", cli=False))
    tokenizer: str = field(default="chars", metadata=_doc(
        "Tokenizer for trace length: chars, or a folder / Hub id (the target model's)."))
    solvers: tuple[str, ...] = field(default=(), metadata=_doc(
        "Solver models (folders / Hub ids) run through s1kit generate; a correct answer drops the row."))
    solver_outputs: tuple[str, ...] = field(default=(), metadata=_doc(
        "Precomputed solver outputs as name=path.jsonl (s1kit generate rows, joined by id)."))
    solver_max_thinking_tokens: int | None = field(default=None, metadata=_doc(
        "Thinking cap for solver runs (None: plain generation)."))
    solver_max_answer_tokens: int = field(default=2048, metadata=_doc(
        "Answer-token cap of each solver generation. Range: >= 1."))
    solver_batch_size: int = field(default=8, metadata=_doc("Sequences each solver decodes together. Range: >= 1."))
    solver_missing: str = field(default="keep", metadata=_doc("Rows a solver has no output for: keep or drop."))
    domains: str = field(default="auto", metadata=_doc(
        "auto (the row's domain, else keywords), keyword (offline MSC classifier), field (the row's), llm."))
    domain_default: str | None = field(default=None, metadata=_doc(
        "MSC code for rows the keyword classifier cannot place (None: drop them as no_domain)."))
    llm_base_url: str = field(default="http://127.0.0.1:8000/v1", metadata=_doc("LLM labeler endpoint."))
    llm_model: str = field(default="", metadata=_doc("LLM labeler model name (domains=llm)."))
    llm_api_key_env: str | None = field(default="OPENAI_API_KEY", metadata=_doc("Env var with the labeler's key."))
    select_method: str = field(default="s1k", metadata=_doc("s1k, random, diverse, longest or full."))
    n: int = field(default=1000, metadata=_doc("Rows to select."))
    seed: int = field(default=0, metadata=_doc("Selection seed (same seed, same selection)."))
    select_half_life: float = field(default=1.0, metadata=_doc(
        "s1k selection: rank weight 2**(-rank / half_life); 1 is s1's. Range: > 0."))
    select_from: str = field(default="", metadata=_doc(
        "The stage whose rows select draws from (empty: the one before it). s1's ablations (section 5.1: "
        "1K-random, -diverse, -longest) skip the difficulty filter: quality."))
    trace_columns: str = field(default="deepseek", metadata=_doc(
        "Which s1K-1.1 column pair holds the traces: deepseek or gemini."))
    parquet: bool = field(default=True, metadata=_doc("Also write the final set as Parquet."))
    stages: tuple[str, ...] = field(default=(), metadata=_doc("Only these stages (default: all)."))
    force: bool = field(default=False, metadata=_doc("Rerun stages even when their cache matches."))
    progress: bool = field(default=True, metadata=_doc("Show progress bars."))

    def __post_init__(self) -> None:
        from s1kit.data.sources import SourceConfig

        self.sources = tuple(self.sources)
        for entry in self.sources:
            if not isinstance(entry, Mapping):
                raise ConfigError("sources[]", entry, "a mapping with name, path or synth")
            SourceConfig.from_dict(dict(entry))
        check_int("ngram", self.ngram, 1, 64)
        check_float("dedup_threshold", self.dedup_threshold, 0.0, 1.0, lo_open=True)
        check_choice("teacher", self.teacher, ("none", "distill"))
        check_choice("solver_missing", self.solver_missing, ("keep", "drop"))
        check_choice("domains", self.domains, ("auto", "keyword", "field", "llm"))
        check_choice("select_method", self.select_method, SELECT_METHODS)
        check_choice("trace_columns", self.trace_columns, ("deepseek", "gemini"))
        check_int("n", self.n, 0)
        check_int("solver_batch_size", self.solver_batch_size, 1)
        check_int("solver_max_answer_tokens", self.solver_max_answer_tokens, 1)
        check_int("seed", self.seed, 0)
        check_float("select_half_life", self.select_half_life, 0.0, 1e9, lo_open=True)
        for stage in self.stages:
            check_choice("stages", stage, STAGES)
        if self.select_from:
            check_choice("select_from", self.select_from, STAGES[:-1])
        for spec in self.solver_outputs:
            if "=" not in spec:
                raise ConfigError("solver_outputs", spec, "entries name=path.jsonl")
        if self.domains == "llm" and not self.llm_model:
            raise ConfigError("llm_model", self.llm_model, "a model name when domains=llm")
        if self.domain_default is not None:
            from s1kit.data.features import msc_codes

            check_choice("domain_default", self.domain_default, sorted(msc_codes()))
        if not isinstance(self.quality, Mapping):
            raise ConfigError("quality", self.quality, "a mapping {disable: [...], rules: [...]}")
        from s1kit.data.quality import rules_from_config

        try:
            rules_from_config(self.quality)
        except ValueError as err:
            raise ConfigError("quality", self.quality, str(err)) from None


# ---------------------------------------------------------------------------------------------
# stage plumbing
# ---------------------------------------------------------------------------------------------


@dataclass
class StageResult:
    kept: list[Row]
    log: DropLog
    params: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


def stage_output(cfg: CurateConfig, stage: str) -> Path:
    return Path(cfg.output_dir) / f"{STAGES.index(stage) + 1:02d}-{stage}.jsonl"


def active_stages(cfg: CurateConfig) -> list[str]:
    """The pipeline's stages (distill only with a teacher)."""
    return [s for s in STAGES if s != "distill" or cfg.teacher == "distill"]


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def params_hash(params: Mapping[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()


def is_cached(out: Path, inputs_hash: str, params: Mapping[str, Any]) -> bool:
    """The stage ran on exactly these inputs with these parameters and its output is intact."""
    mpath = manifest_path(out)
    if not (out.exists() and mpath.exists()):
        return False
    m = json.loads(mpath.read_text(encoding="utf-8"))
    return (m.get("inputs_hash") == inputs_hash and m.get("cache_hash") == params_hash(params)
            and m.get("output_hash") == file_hash(out))


def write_stage(cfg: CurateConfig, stage: str, count_in: int, inputs_hash: str, result: StageResult,
                wall: float, cache_params: Mapping[str, Any]) -> StageManifest:
    if count_in != len(result.kept) + len(result.log):
        raise RuntimeError(f"stage {stage!r}: {count_in} rows in, {len(result.kept)} kept + {len(result.log)} "
                           "dropped; a stage must account for every row")
    out = stage_output(cfg, stage)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    write_jsonl(tmp, result.kept)
    tmp.replace(out)  # a killed stage never leaves a half-written output that looks finished
    result.log.write_jsonl(out.with_name(out.stem + ".drops.jsonl"))
    manifest = StageManifest(stage=stage, inputs_hash=inputs_hash, parameters=result.params, count_in=count_in,
                             count_out=len(result.kept), drops=dict(sorted(result.log.counts().items())),
                             wall_seconds=round(wall, 3), output=str(out))
    data = {**manifest.to_dict(), "cache_hash": params_hash(cache_params), "output_hash": file_hash(out),
            **({"extra": result.extra} if result.extra else {})}
    manifest_path(out).write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return manifest


def read_manifest(path: Path) -> StageManifest:
    data = json.loads(path.read_text(encoding="utf-8"))
    known = set(StageManifest.__dataclass_fields__)
    return StageManifest.from_dict({k: v for k, v in data.items() if k in known})


# ---------------------------------------------------------------------------------------------
# the stages: (cfg, rows, ctx) -> StageResult; params are what the cache compares
# ---------------------------------------------------------------------------------------------


def stage_collect(cfg: CurateConfig, rows: list[Row], ctx: dict[str, Any]) -> StageResult:
    from s1kit.data.sources import SourceConfig, collect, pinned_revisions

    sources = [SourceConfig.from_dict(dict(s)) for s in cfg.sources]
    kept, log = collect(sources, progress=cfg.progress)
    return StageResult(kept, log, {"sources": [s.to_dict() for s in sources]},
                       {"revisions": pinned_revisions(sources), "by_source": _by_source(kept)})


def _by_source(rows: list[Row]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["source"]] = counts.get(r["source"], 0) + 1
    return dict(sorted(counts.items()))


def stage_decontaminate(cfg: CurateConfig, rows: list[Row], ctx: dict[str, Any]) -> StageResult:
    from s1kit.data.decontaminate import NgramIndex, decontaminate, hits_by_source, load_benchmarks

    bench: dict[str, list[str]] = {}
    for path in cfg.benchmarks:
        for name, texts in load_benchmarks(path).items():
            if name in bench:
                raise ConfigError("benchmarks", path, f"files with distinct names ({name!r} appears twice)")
            bench[name] = texts
    if not bench:
        logger.warning("decontaminate: no benchmarks configured; nothing is checked (set curate.benchmarks)")
    kept, log = decontaminate(rows, NgramIndex.build(bench, cfg.ngram), n=cfg.ngram)
    params = {"ngram": cfg.ngram, "benchmarks": {k: len(v) for k, v in sorted(bench.items())},
              "benchmarks_hash": params_hash(bench)}
    return StageResult(kept, log, params, {"hits_by_source": hits_by_source(log)})


def stage_dedup(cfg: CurateConfig, rows: list[Row], ctx: dict[str, Any]) -> StageResult:
    from s1kit.data.dedup import dedup

    kept, log = dedup(rows, threshold=cfg.dedup_threshold, near=cfg.near_dedup)
    return StageResult(kept, log, {"threshold": cfg.dedup_threshold, "near": cfg.near_dedup})


def stage_distill(cfg: CurateConfig, rows: list[Row], ctx: dict[str, Any]) -> StageResult:
    from s1kit.config import to_dict
    from s1kit.data.distill import DistillConfig, run_distill
    from s1kit.forcing.validation import from_dict

    section = dict(ctx.get("distill_section") or {})
    work = Path(cfg.output_dir) / "distill"
    work.mkdir(parents=True, exist_ok=True)
    questions = work / "questions.jsonl"
    write_jsonl(questions, rows)
    dcfg = from_dict(DistillConfig, {**section, "input": str(questions), "output": str(work / "traces.jsonl"),
                                     "progress": cfg.progress}, where="distill")
    if dcfg.samples != 1:  # one row in, one row out: k traces per question is `s1kit distill --samples k`
        raise ConfigError("distill.samples", dcfg.samples, "1 inside `s1kit curate`")
    manifest = run_distill(dcfg)
    got: dict[str, Row] = {}
    for rec in iter_jsonl(dcfg.output):
        got.setdefault(str(rec.get("metadata", {}).get("question_id", rec["id"])), rec)
    kept, log = [], DropLog("distill")
    for row in rows:
        if str(row["id"]) in got:
            kept.append(got[str(row["id"])])
        else:
            log.add(row, "no_teacher_output")
    params = {k: v for k, v in to_dict(dcfg).items() if k not in ("input", "output", "progress", "dry_run")}
    return StageResult(kept, log, params, {"ledger": manifest["ledger"], "teacher_drops": manifest["drops"]})


def stage_quality(cfg: CurateConfig, rows: list[Row], ctx: dict[str, Any]) -> StageResult:
    from s1kit.data.quality import quality_filter, rules_from_config

    rules = rules_from_config(cfg.quality)
    kept, log = quality_filter(rows, rules)
    return StageResult(kept, log, {"rules": [r.name for r in rules], "config": dict(cfg.quality)})


def stage_difficulty(cfg: CurateConfig, rows: list[Row], ctx: dict[str, Any]) -> StageResult:
    from s1kit.data.features import (add_teacher_correct, add_trace_tokens, difficulty_filter,
                                     load_length_tokenizer, read_solver_outputs, run_solver)

    add_trace_tokens(rows, load_length_tokenizer(cfg.tokenizer))
    teacher = add_teacher_correct(rows)
    outputs: dict[str, dict[str, str]] = {}
    hashes: dict[str, str] = {}
    for spec in cfg.solver_outputs:
        name, path = spec.split("=", 1)
        outputs[name] = read_solver_outputs(path)
        hashes[name] = file_hash(Path(path))
    for model in cfg.solvers:
        path = run_solver(model, rows, Path(cfg.output_dir) / "solvers", cfg.solver_max_thinking_tokens,
                          max_answer_tokens=cfg.solver_max_answer_tokens, batch_size=cfg.solver_batch_size, backend=(ctx.get("solver_backends") or {}).get(model), progress=cfg.progress)
        outputs[model] = read_solver_outputs(path)
    if not outputs:
        logger.warning("difficulty: no solvers configured; no row is dropped as too easy")
    kept, log = difficulty_filter(rows, outputs, missing=cfg.solver_missing)
    params = {"tokenizer": cfg.tokenizer, "solvers": list(cfg.solvers), "solver_outputs": hashes,
              "solver_max_thinking_tokens": cfg.solver_max_thinking_tokens, "solver_missing": cfg.solver_missing}
    ungraded = sum(1 for r in kept if r.get("solver_correct") is None)
    return StageResult(kept, log, params, {"teacher_correct": dict(teacher), "kept_ungraded": ungraded})


def stage_domains(cfg: CurateConfig, rows: list[Row], ctx: dict[str, Any]) -> StageResult:
    from functools import partial

    from s1kit.data.features import LLMLabeler, auto_labeler, field_labeler, keyword_labeler, label_domains

    if cfg.domains == "llm":
        labels = LLMLabeler(cfg.llm_base_url, cfg.llm_model, cfg.llm_api_key_env).label_all(rows)
        labeler: Callable[[Mapping[str, Any]], str | None] = lambda r: labels.get(str(r["id"]))  # noqa: E731
    elif cfg.domains == "keyword":
        labeler = partial(keyword_labeler, default=cfg.domain_default)
    elif cfg.domains == "field":
        labeler = field_labeler
    else:
        labeler = auto_labeler(cfg.domain_default)
    kept, log = label_domains(rows, labeler)
    params = {"domains": cfg.domains, "default": cfg.domain_default,
              **({"llm_model": cfg.llm_model} if cfg.domains == "llm" else {})}
    return StageResult(kept, log, params, {"domains": len({r["domain"] for r in kept})})


def stage_select(cfg: CurateConfig, rows: list[Row], ctx: dict[str, Any]) -> StageResult:
    from s1kit.data.select import select

    if cfg.select_method in ("s1k", "longest") and any(r.get("trace_tokens") is None for r in rows):
        from s1kit.data.features import add_trace_tokens, load_length_tokenizer  # rows from before difficulty

        add_trace_tokens(rows, load_length_tokenizer(cfg.tokenizer))
    kept, log = select(rows, n=cfg.n, seed=cfg.seed, method=cfg.select_method, half_life=cfg.select_half_life)
    return StageResult(kept, log, {"method": cfg.select_method, "n": cfg.n, "seed": cfg.seed})


STAGE_FUNCS: dict[str, Callable[[CurateConfig, list[Row], dict[str, Any]], StageResult]] = {
    "collect": stage_collect, "decontaminate": stage_decontaminate, "dedup": stage_dedup, "distill": stage_distill,
    "quality": stage_quality, "difficulty": stage_difficulty, "domains": stage_domains, "select": stage_select,
}


# The stage whose rows each field changes (s1kit.stagecache: a stage's key is the whole config
# minus the fields of other stages and NOT_OUTPUT_FIELDS, so a new, undeclared field changes
# every stage's key: a rerun, never a stale output).
FIELD_STAGE = {
    "sources": "collect", "benchmarks": "decontaminate", "ngram": "decontaminate", "dedup_threshold": "dedup",
    "near_dedup": "dedup", "quality": "quality", **{f: "difficulty" for f in (
        "tokenizer", "solvers", "solver_outputs", "solver_max_thinking_tokens", "solver_max_answer_tokens",
        "solver_missing")},
    "domains": "domains", "domain_default": "domains", "llm_model": "domains",
    "select_method": "select", "n": "select", "seed": "select", "select_half_life": "select",
    "select_from": "select",
}
# Fields that change no stage's rows: where and how things are written, pacing, endpoints.
NOT_OUTPUT_FIELDS = ("output_dir", "name", "teacher", "solver_batch_size", "llm_base_url", "llm_api_key_env",
                     "trace_columns", "parquet", "stages", "force", "progress")


def stage_params(cfg: CurateConfig, stage: str, ctx: dict[str, Any]) -> dict[str, Any]:
    """What decides whether a cached stage output is still valid (cheap: no stage work)."""
    from s1kit.stagecache import stage_settings

    other_stages = tuple(name for name, owner in FIELD_STAGE.items() if owner != stage)
    params: dict[str, Any] = stage_settings(cfg, NOT_OUTPUT_FIELDS + other_stages)
    if stage == "collect":  # local files: their bytes are part of the input
        params["files"] = {s["path"]: file_hash(Path(s["path"])) for s in cfg.sources if s.get("path")}
    if stage == "decontaminate":
        params["files"] = {str(p): file_hash(p) for b in cfg.benchmarks for p in _benchmark_files(Path(b))}
    if stage == "difficulty":
        params["files"] = {s: file_hash(Path(s.split("=", 1)[1])) for s in cfg.solver_outputs}
    if stage == "select" and cfg.select_from:  # rows from before difficulty: select counts trace tokens itself
        params["tokenizer"] = cfg.tokenizer
    if stage == "distill":
        params["distill"] = {k: v for k, v in (ctx.get("distill_section") or {}).items()}
    return params


def _benchmark_files(path: Path) -> list[Path]:
    return sorted(path.glob("*.jsonl")) if path.is_dir() else [path]


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------


def run_curate(cfg: CurateConfig, distill_section: Mapping[str, Any] | None = None,
               solver_backends: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run (or reuse) every stage, then write the final dataset; returns the funnel and paths."""
    if not cfg.sources:
        raise ConfigError("sources", cfg.sources, "a non-empty list in the recipe's curate: section")
    if cfg.teacher == "distill" and not distill_section:
        raise ConfigError("teacher", cfg.teacher, "'none', or 'distill' with a distill: section in the recipe")
    ctx = {"distill_section": dict(distill_section or {}), "solver_backends": dict(solver_backends or {})}
    stages = active_stages(cfg)
    wanted = set(cfg.stages) or set(stages)
    Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    prev: Path | None = None
    manifests: list[StageManifest] = []
    for stage in stages:
        out = stage_output(cfg, stage)
        if stage not in wanted:
            if not out.exists():
                raise ConfigError("stages", ",".join(cfg.stages), f"a set whose inputs exist: run {stage!r} first")
            manifests.append(read_manifest(manifest_path(out)))
            prev = out
            continue
        if stage == "select" and cfg.select_from:
            prev = _select_input(cfg)
        manifests.append(run_one_stage(cfg, stage, prev, ctx))
        prev = out
    final = write_final(cfg, prev) if prev is not None else {}
    funnel = write_funnel(cfg, manifests)
    return {"funnel": funnel, "output": final, "manifests": [m.to_dict() for m in manifests]}


def _select_input(cfg: CurateConfig) -> Path:
    path = stage_output(cfg, cfg.select_from)
    if not path.exists():
        raise ConfigError("select_from", cfg.select_from, f"a stage that has run (no {path})")
    return path


def run_one_stage(cfg: CurateConfig, stage: str, prev: Path | None, ctx: dict[str, Any]) -> StageManifest:
    out = stage_output(cfg, stage)
    params = stage_params(cfg, stage, ctx)
    inputs_hash = file_hash(prev) if prev is not None else params_hash(params)
    if not cfg.force and is_cached(out, inputs_hash, params):
        logger.info("curate: %s is cached (inputs and parameters unchanged): reusing %s", stage, out)
        return read_manifest(manifest_path(out))
    rows = list(iter_jsonl(prev)) if prev is not None else []
    logger.info("curate: %s on %d rows", stage, len(rows))
    start = time.perf_counter()
    result = STAGE_FUNCS[stage](cfg, rows, ctx)
    result.params = {**_jsonable(params), "stage": result.params}
    # collect has no input file: what it read is what it kept plus what it dropped
    count_in = len(rows) if prev is not None else len(result.kept) + len(result.log)
    manifest = write_stage(cfg, stage, count_in, inputs_hash, result, time.perf_counter() - start, params)
    logger.info("curate: %s kept %d of %d; drops %s", stage, manifest.count_out, manifest.count_in, manifest.drops)
    return manifest


def _jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(params, sort_keys=True, default=str))


def write_final(cfg: CurateConfig, selected: Path) -> dict[str, str]:
    """The selected rows in s1K-1.1's columns (s1kit.data.s1k_columns) as JSONL (and Parquet)."""
    rows = [s1k_row(r, cfg.trace_columns) for r in iter_jsonl(selected)]
    base = Path(cfg.output_dir) / cfg.name
    paths = {"jsonl": str(base.with_suffix(".jsonl"))}
    write_jsonl(paths["jsonl"], rows)
    if cfg.parquet:
        import pyarrow as pa
        import pyarrow.parquet as pq

        paths["parquet"] = str(base.with_suffix(".parquet"))
        pq.write_table(pa.Table.from_pylist(rows), paths["parquet"])
    logger.info("curate: wrote %d rows to %s", len(rows), ", ".join(paths.values()))
    return paths


def write_funnel(cfg: CurateConfig, manifests: list[StageManifest]) -> str:
    from s1kit.data.manifest import funnel_line

    if not manifests:
        return ""
    md = "# Curation funnel\n\n" + funnel_markdown(manifests)
    (Path(cfg.output_dir) / "funnel.md").write_text(md, encoding="utf-8")
    return funnel_line(manifests)


def curate_report(cfg: CurateConfig) -> tuple[str, Path]:
    """The funnel of the stages that have run in ``cfg.output_dir``, as Markdown (also written)."""
    manifests = [read_manifest(manifest_path(stage_output(cfg, s))) for s in active_stages(cfg)
                 if manifest_path(stage_output(cfg, s)).exists()]
    if not manifests:
        raise ConfigError("output_dir", cfg.output_dir, "a folder where `s1kit curate` has run")
    write_funnel(cfg, manifests)
    path = Path(cfg.output_dir) / "funnel.md"
    return path.read_text(encoding="utf-8"), path
