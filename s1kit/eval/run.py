"""The eval stage: budget-forced generation on benchmarks, graded offline, whole curves in one run.

    s1kit eval --model PATH --benchmarks math500,aime24 --budgets 512,1024,2048,4096 --waits 0,1,2
    s1kit eval --model PATH --benchmarks math500 --data math500=local/math500.jsonl --limit 50
    s1kit eval --model PATH --benchmarks math500 --budgets 512,1024,2048 --majority-n 8 \
        --rejection-budgets 512,1024,2048                        # + the paper's baselines
    s1kit eval --model PATH --benchmarks synth --synth-n 20 --budgets 64,128,256   # synthetic tasks
    s1kit eval --config recipes/eval-math500.yaml

With ``--budgets`` every (budget, waits) point comes from one longest greedy run per problem
(:mod:`s1kit.eval.sweep`); without, one point with the policy's own cap. Baselines run next to
it (:mod:`s1kit.eval.baselines`): majority voting over ``majority_n`` sampled runs (parallel
scaling, maj@1, 2, 4, ... n) and rejection sampling per ``rejection_budgets`` entry (attempts
counted). ``prompt_mode`` token/step/class states the budget in the prompt (conditional control;
each budget point is then its own run, since the prompts differ).

Each graded sample is appended to ``<output_dir>/samples.jsonl`` as soon as its chunk is done
(fsynced), so a killed run resumes where it stopped: a problem with every row of a method present
is skipped, a partly written one is regenerated (no duplicates, no gaps). A sample whose grading
times out or crashes is recorded with its reason and counts as incorrect. At the end
``results.json`` (config, versions, dataset sources, revisions and hashes, per-method metrics with
95% bootstrap CIs, s1's Control / Scaling / Performance), ``scaling.png``,
``parallel_vs_sequential.png`` and ``report.md``/``report.html`` are written from all samples.
"""

from __future__ import annotations

import logging
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s1kit.config import BackendGroup, ModelGroup, PromptGroup, RunGroup, check_groups
from s1kit.eval.methods import grade_sample, sample_row  # noqa: F401  (the stage's row API)
from s1kit.forcing import BudgetPolicy
from s1kit.eval.resume import done_problems, drop_incomplete, expected_points, open_samples, read_samples
from s1kit.io import write_json_atomic
from s1kit.stagecache import record_settings
from s1kit.forcing.validation import ConfigError, check_choice, check_float, check_int

log = logging.getLogger(__name__)

PROMPT_MODES = ("none", "token", "step", "class")


def _doc(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class EvalConfig(RunGroup, PromptGroup, BackendGroup, ModelGroup):
    """What to evaluate, on which budgets and baselines, and where results go (model, backend and
    prompt fields: the shared groups of s1kit.config)."""

    benchmarks: tuple[str, ...] = field(default=("math500",), metadata=_doc(
        "Benchmarks: aime24, aime25, math500, amc23, gpqa_diamond, synth, synth:<family>[+<family>]."))
    data: tuple[str, ...] = field(default=(), metadata=_doc("Local files as name=path (else the Hub)."))
    data_revision: str | None = field(default=None, metadata=_doc(
        "Hub dataset revision to pin (recorded in results.json; unpinned loads log a warning)."))
    synth_n: int = field(default=50, metadata=_doc("synth benchmarks: problems per task family. Range: >= 1."))
    synth_seed: int = field(default=1234, metadata=_doc(
        "synth benchmarks: generation seed (use one the training data did not). Range: >= 0."))
    synth_levels: tuple[int, ...] = field(default=(), metadata=_doc(
        "synth benchmarks: difficulty levels to cycle through (empty: all, 1-4)."))
    budgets: tuple[str, ...] = field(default=(), metadata=_doc(
        "Thinking caps to sweep (one run gives all points); empty: the policy's max_thinking_tokens."))
    waits: tuple[str, ...] = field(default=("0",), metadata=_doc("Numbers of 'Wait' extensions to sweep."))
    prompt_mode: str = field(default="none", metadata=_doc(
        "Conditional control: none, token ('Think for up to N tokens.'), step (N = budget // "
        "tokens_per_step steps) or class (two budgets: 'short', 'long')."))
    prompt_template: str | None = field(default=None, metadata=_doc(
        "Custom conditional prompt with {question} and {value}; None: the mode's template."))
    tokens_per_step: int = field(default=32, metadata=_doc("step mode: thinking tokens per step. Range: >= 1."))
    majority_n: int = field(default=0, metadata=_doc(
        "Majority voting baseline: samples per problem (0: off; maj@1, 2, 4, ... n). Range: >= 0."))
    majority_temperature: float = field(default=0.7, metadata=_doc(
        "Sampling temperature of majority voting. Range: (0, 100]."))
    majority_budget: int | None = field(default=None, metadata=_doc(
        "Thinking cap of each majority sample; None: the largest budget. Range: >= 1."))
    rejection_budgets: tuple[str, ...] = field(default=(), metadata=_doc(
        "Rejection sampling baseline: budgets to resample under until the thinking fits (empty: off)."))
    rejection_max_attempts: int = field(default=16, metadata=_doc(
        "Rejection sampling: attempts per problem before it counts as none fit. Range: >= 1."))
    rejection_temperature: float = field(default=1.0, metadata=_doc(
        "Sampling temperature of rejection sampling. Range: (0, 100]."))
    output_dir: str = field(default="runs/eval", metadata=_doc("Where samples, results and plots go."))
    grade_timeout_s: float = field(default=5.0, metadata=_doc("Per-sample math-verify timeout (seconds)."))
    judge_model: str | None = field(default=None, metadata=_doc(
        "LLM judge (optional grader tier): model name at an OpenAI-compatible endpoint (extra: api)."))
    judge_base_url: str | None = field(default=None, metadata=_doc("LLM judge endpoint base URL (…/v1)."))
    judge_api_key_env: str = field(default="OPENAI_API_KEY", metadata=_doc(
        "Environment variable holding the judge's API key (never logged or stored)."))
    judge_when: str = field(default="undecided", metadata=_doc(
        "When the judge decides: undecided (offline tiers could not), incorrect, always."))
    judge_cache: str | None = field(default=None, metadata=_doc(
        "Judge cache file; None: <output_dir>/judge_cache.sqlite."))

    def __post_init__(self) -> None:
        check_groups(self)
        check_int("synth_n", self.synth_n, 1)
        check_int("synth_seed", self.synth_seed, 0)
        try:
            self.synth_levels = tuple(int(lv) for lv in self.synth_levels)
        except (TypeError, ValueError):
            raise ConfigError("synth_levels", self.synth_levels, "integers among 1-4") from None
        if any(not 1 <= lv <= 4 for lv in self.synth_levels):
            raise ConfigError("synth_levels", list(self.synth_levels), "integers among 1-4")
        for name, values in (("budgets", self.budgets), ("waits", self.waits),
                             ("rejection_budgets", self.rejection_budgets)):
            if any(not str(v).isdigit() for v in values):
                raise ConfigError(name, list(values), "comma-separated integers >= 0")
        if not self.waits:
            raise ConfigError("waits", (), "at least one integer >= 0")
        for item in self.data:
            if "=" not in item:
                raise ConfigError("data", item, "name=path")
        self._check_baselines()
        self._check_prompt_mode()
        if self.judge_model is not None:
            self.judge_config()  # validates the judge fields

    def _check_baselines(self) -> None:
        check_int("majority_n", self.majority_n, 0)
        check_float("majority_temperature", self.majority_temperature, 0, 100, lo_open=True)
        if self.majority_budget is not None:
            check_int("majority_budget", self.majority_budget, 1)
        check_int("rejection_max_attempts", self.rejection_max_attempts, 1)
        check_float("rejection_temperature", self.rejection_temperature, 0, 100, lo_open=True)
        if any(int(b) < 1 for b in self.rejection_budgets):
            raise ConfigError("rejection_budgets", list(self.rejection_budgets), "integers >= 1")

    def _check_prompt_mode(self) -> None:
        check_choice("prompt_mode", self.prompt_mode, PROMPT_MODES)
        check_int("tokens_per_step", self.tokens_per_step, 1)
        if self.prompt_mode == "class" and len(set(self.budgets)) != 2:
            raise ConfigError("budgets", list(self.budgets), "exactly two budgets in class mode (short, long)")
        if self.prompt_mode != "none" and not self.budgets:
            raise ConfigError("budgets", [], f"at least one budget in {self.prompt_mode} mode (stated in the prompt)")
        if self.prompt_template is not None:
            if self.prompt_mode == "none":
                raise ConfigError("prompt_template", self.prompt_template, "only with prompt_mode token/step/class")
            if "{question}" not in self.prompt_template or "{value}" not in self.prompt_template:
                raise ConfigError("prompt_template", self.prompt_template, "a template with {question} and {value}")

    def budget_list(self) -> list[int]:
        return [int(b) for b in self.budgets]

    def wait_list(self) -> list[int]:
        return [int(w) for w in self.waits]

    def judge_config(self):
        from s1kit.eval.judge import JudgeConfig

        cache = self.judge_cache or str(Path(self.output_dir) / "judge_cache.sqlite")
        return JudgeConfig(model=self.judge_model or "", base_url=self.judge_base_url,
                           api_key_env=self.judge_api_key_env, when=self.judge_when, cache_path=cache)

    def prompt_value(self, budget: int) -> int | str:
        """What the conditional prompt states for a budget point."""
        if self.prompt_mode == "step":
            return max(1, budget // self.tokens_per_step)
        if self.prompt_mode == "class":
            return "short" if budget == min(self.budget_list()) else "long"
        return budget


def run_eval(cfg: EvalConfig, policy: BudgetPolicy, backend=None) -> dict[str, Any]:
    """Generate, grade and summarise every benchmark and method; returns the results dict (also on disk)."""
    from s1kit.eval.benchmarks import benchmark_source, dataset_hash, load_benchmark
    from s1kit.eval.report import write_report
    from s1kit.eval.summary import summarise

    out_dir = Path(cfg.output_dir)
    samples_path = out_dir / "samples.jsonl"
    scan, settings = open_samples(cfg, policy, samples_path)
    if backend is None:
        from s1kit.generate import make_backend

        backend = make_backend(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    record_settings(out_dir / "settings.json", settings)
    quarantined = scan.quarantined()
    scan.repair()
    judge = _make_judge(cfg)
    paths = dict(item.split("=", 1) for item in cfg.data)
    datasets, problems = {}, set()
    try:
        for name in cfg.benchmarks:
            rows = load_benchmark(name, paths.get(name), cfg.limit, cfg.data_revision, cfg.synth_n, cfg.synth_seed,
                                  cfg.synth_levels)
            datasets[name] = {**benchmark_source(name, paths.get(name), cfg.data_revision, cfg.synth_n,
                                                 cfg.synth_seed, cfg.synth_levels), "rows": len(rows), "sha256": dataset_hash(rows)}
            problems |= {(name, r["id"]) for r in rows}
            if rows:
                _evaluate(cfg, policy, backend, rows, samples_path, judge)
    finally:
        if judge is not None:
            judge.close()
    samples = [s for s in read_samples(samples_path) if (s["benchmark"], s["id"]) in problems]
    results = summarise(samples, policy.min_thinking_tokens, method_names=_method_names(cfg))
    results.update(config=_plain(cfg), policy=policy.to_dict(), datasets=datasets,
                   dataset_hashes={k: v["sha256"] for k, v in datasets.items()}, versions=_versions(),
                   grading=_grading_counts(samples))
    results["backend"] = {"name": cfg.backend, "exact_ids": bool(getattr(backend, "exact_ids", True)),
                          **backend.stats()}
    if judge is not None:
        results["judge"] = {"model": cfg.judge_model, "when": cfg.judge_when, "http_calls": judge.http_calls,
                            "cache_hits": judge.cache_hits}
    results["quarantined"] = quarantined
    write_json_atomic(out_dir / "results.json", results)
    write_report(results, out_dir)
    return results


def _make_judge(cfg: EvalConfig):
    if cfg.judge_model is None:
        return None
    from s1kit.eval.judge import LLMJudge

    return LLMJudge(cfg.judge_config())


def _method_names(cfg: EvalConfig) -> dict[str, str]:
    if cfg.prompt_mode == "none":
        return {}
    return {"budget_forcing": f"{cfg.prompt_mode}-conditional + budget forcing"}


def _grading_counts(samples: list[dict[str, Any]]) -> dict[str, int]:
    """How many samples each grader tier decided (errors and timeouts included, never hidden)."""
    counts: dict[str, int] = {}
    for s in samples:
        counts[s["grade_tier"]] = counts.get(s["grade_tier"], 0) + 1
    return dict(sorted(counts.items()))


def _evaluate(cfg: EvalConfig, policy: BudgetPolicy, backend, rows, samples_path: Path, judge) -> None:
    """Every method for one benchmark, skipping problems whose rows are all on disk already."""
    budgets = cfg.budget_list() or [policy.max_thinking_tokens]
    if budgets == [None] and cfg.wait_list() != [0]:
        raise ConfigError("waits", list(cfg.waits), "0 when there is no thinking phase (max_thinking_tokens None)")
    if budgets != [None] and any(not isinstance(b, int) for b in budgets):
        raise ConfigError("budgets", budgets, "integers (give --budgets when max_thinking_tokens is 'auto')")
    if budgets == [None] and (cfg.majority_n and cfg.majority_budget is None or cfg.prompt_mode != "none"):
        raise ConfigError("budgets", [], "a budget for majority voting (or --majority-budget) and conditional prompts")
    expected = expected_points(cfg, budgets)
    bench = rows[0]["benchmark"]
    done = done_problems(read_samples(samples_path), bench, expected)
    drop_incomplete(samples_path, bench, done, expected)
    from s1kit.eval.methods import run_budget_forcing, run_majority, run_rejection

    runners = {"budget_forcing": run_budget_forcing, "majority_voting": run_majority,
               "rejection_sampling": run_rejection}
    for method in expected:
        todo = [r for r in rows if (method, r["id"]) not in done]
        if len(todo) < len(rows):
            log.info("%s %s: %d of %d problems already done", rows[0]["benchmark"], method,
                     len(rows) - len(todo), len(rows))
        if todo:
            runners[method](cfg, policy, backend, todo, budgets, samples_path, judge)


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
