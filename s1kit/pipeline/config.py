"""The embedded default's configuration: one validated dataclass, set by a YAML recipe (``run:``).

    cfg = RunConfig.from_recipe("recipes/tiny.yaml", overrides={"smoke": True})

Every knob of every stage is a field here, so a recipe is data and a test can load them all.
The defaults are the setting measured in docs/learnability.md (a 0.13M Qwen2 learns the grid
traces of add_chain and count_letter in minutes on a CPU).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from s1kit.config import ConfigError
from s1kit.forcing.validation import check_choice, check_float, check_int

SELECT_ABLATIONS = ("random", "diverse", "longest", "full")


def _doc(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class RunConfig:
    """The whole s1 pipeline on a CPU: pool → base models → curate → SFT → evaluate → report."""

    output_dir: str = field(default="runs/tiny", metadata=_doc("Folder of every stage's outputs and the report."))
    seed: int = field(default=0, metadata=_doc("Seed of the pool, the models and the selection. Range: >= 0."))
    threads: int = field(default=2, metadata=_doc("torch CPU threads. Range: >= 1."))
    stage_workers: int = field(default=2, metadata=_doc(
        "Processes for independent stages (base_small beside base_large, the first ablation's SFT beside "
        "s1K's), each with `threads` torch threads, so the numbers do not change; 1: one after another. "
        "Range: 1-2."))
    # -- the pool (the analogue of s1's 59K questions) --------------------------------------------
    families: tuple[str, ...] = field(default=("add_chain", "count_letter"), metadata=_doc(
        "Synthetic task families (s1kit.synth.tasks); they play s1's sources and domains."))
    pool_per_family: int = field(default=20000, metadata=_doc("Questions per family in the pool. Range: >= 10."))
    mistake_rate: float = field(default=0.1, metadata=_doc(
        "Share of teacher traces with an uncaught mistake (the correctness filter drops them). Range: [0, 1)."))
    check_rate: float | None = field(default=None, metadata=_doc(
        "Probability of each further self-check in a teacher trace (none: the teacher's default, "
        "s1kit.synth.teacher.GRID_CHECK_RATE on the checked grids). Range: [0, 1]."))
    correction_rate: float | None = field(default=None, metadata=_doc(
        "Share of teacher traces with a caught mistake (a wrong last step corrected by the first check; "
        "none: s1kit.synth.teacher.CORRECTION_RATE). Range: [0, 1]."))
    pool_correction_rates: tuple[str, ...] = field(default=(), metadata=_doc(
        "family=rate entries: the SFT pool's caught-mistake share per family, over correction_rate; "
        "the base corpus keeps correction_rate (the s1K teacher is not the base's corpus). Range: [0, 1]."))
    # -- base models (the analogue of Qwen2.5-7B/32B-Instruct) -----------------------------------
    base_small: str = field(default="tiny:hidden=48,layers=2,heads=4,kv_heads=2,ffn=192,max_positions=512", metadata=_doc(
        "The smaller base model ('7B'): a tiny: spec (s1kit.train.tiny)."))
    base_large: str = field(default="tiny:hidden=64,layers=2,heads=4,kv_heads=2,ffn=256,max_positions=512", metadata=_doc(
        "The larger base model ('32B'), which SFT starts from: a tiny: spec."))
    base_worked_share: float = field(default=0.8, metadata=_doc(
        "Share of the base corpus written as worked examples (plain documents), the rest direct chat "
        "answers (docs/learnability.md, finding 3). Range: [0, 1]."))
    base_steps: int = field(default=4500, metadata=_doc(
        "Optimizer steps of the large base's pre-training (3,000 was at the edge: docs/learnability.md, finding 8). "
        "Range: >= 1."))
    base_small_steps: int = field(default=1500, metadata=_doc(
        "Optimizer steps of the small base's pre-training (the weaker solver). Range: >= 1."))
    base_lr: float = field(default=1e-2, metadata=_doc("Peak learning rate of base pre-training. Range: (0, 1]."))
    # -- curation -------------------------------------------------------------------------------
    select_n: int = field(default=1000, metadata=_doc("Questions selected for SFT (s1K: 1,000). Range: >= 1."))
    select_half_life: float = field(default=1.0, metadata=_doc(
        "s1K selection: a trace's weight is 2**(-rank / half_life) among its domain's, longest first "
        "(1: s1's; larger keeps a length distribution). Range: > 0."))
    ablation_from: str = field(default="quality", metadata=_doc(
        "The curation stage the ablation selections draw from: quality (s1 section 5.1: 1K-random, "
        "-diverse and -longest skip the difficulty filter) or domains (after every filter, as s1K)."))
    ablations: tuple[str, ...] = field(default=("random",), metadata=_doc(
        "Other selections trained and evaluated against s1K: " + ", ".join(SELECT_ABLATIONS) + "."))
    # -- SFT (s1's schedule, scaled down) ---------------------------------------------------------
    sft_epochs: float = field(default=5.0, metadata=_doc("SFT epochs (s1: 5). Range: > 0."))
    sft_lr: float = field(default=1e-2, metadata=_doc("Peak SFT learning rate (s1: 1e-5 on 32B). Range: (0, 1]."))
    batch_size: int = field(default=8, metadata=_doc("Sequences per optimizer step (base and SFT). Range: >= 1."))
    block_size: int = field(default=512, metadata=_doc("Maximum tokens per training sample. Range: >= 32."))
    # -- evaluation -----------------------------------------------------------------------------
    eval_per_family: int = field(default=100, metadata=_doc("Evaluation problems per family. Range: >= 1."))
    eval_seed: int = field(default=1234, metadata=_doc(
        "Seed of the evaluation set (the pool is decontaminated against it). Range: >= 0."))
    eval_levels: tuple[int, ...] = field(default=(4,), metadata=_doc(
        "Difficulty levels of the evaluation set (1-4). Default: the hardest only, as s1 evaluates on "
        "competition problems its base model mostly fails (AIME, GPQA)."))
    cap_fractions: tuple[float, ...] = field(default=(0.0, 0.25, 0.5, 0.75, 1.0), metadata=_doc(
        "Thinking caps as fractions of the median teacher trace of the selected set."))
    cap_quantiles: tuple[float, ...] = field(default=(), metadata=_doc(
        "Thinking caps as quantiles of the selected set's trace lengths (0: cap 0); when set, they "
        "replace cap_fractions. Range: each in [0, 1]."))
    full_budget_factor: float = field(default=1.5, metadata=_doc(
        "The 'full' cap: this times the longest selected trace (plus 16). Range: (0, 100]."))
    waits: tuple[int, ...] = field(default=(0, 1, 2), metadata=_doc("'Wait' extensions swept at every cap."))
    forced_answer_prefix: str = field(default="Answer:", metadata=_doc(
        "What the cap appends after the end-of-thinking delimiter (s1: 'Final Answer:'; the tiny "
        "traces end with 'Answer: X')."))
    majority_n: int = field(default=4, metadata=_doc("Majority-voting baseline: samples per problem (0: off). Range: >= 0."))
    majority_temperature: float = field(default=0.7, metadata=_doc("Majority-voting temperature. Range: (0, 100]."))
    rejection_fractions: tuple[float, ...] = field(default=(0.5, 0.75, 1.0), metadata=_doc(
        "Rejection-sampling baseline: budgets as fractions of the median trace (empty: off)."))
    rejection_max_attempts: int = field(default=4, metadata=_doc("Rejection sampling: attempts per problem. Range: >= 1."))
    eval_batch_size: int = field(default=64, metadata=_doc("Sequences decoded together. Range: >= 1."))
    # -- run ------------------------------------------------------------------------------------
    smoke: bool = field(default=False, metadata=_doc(
        "A small version of everything (minutes): the test suite runs it."))
    open_report: bool = field(default=True, metadata=_doc(
        "Open the HTML report in a browser at the end when a display is available."))
    progress: bool = field(default=True, metadata=_doc("Show progress bars."))

    def __post_init__(self) -> None:
        from s1kit.synth.tasks import FAMILIES

        self.families, self.ablations = tuple(self.families), tuple(self.ablations)
        self.cap_fractions, self.waits = tuple(float(f) for f in self.cap_fractions), tuple(int(w) for w in self.waits)
        self.rejection_fractions = tuple(float(f) for f in self.rejection_fractions)
        self.cap_quantiles = tuple(float(q) for q in self.cap_quantiles)
        if any(not 0.0 <= q <= 1.0 for q in self.cap_quantiles):
            raise ConfigError("cap_quantiles", list(self.cap_quantiles), "quantiles in [0, 1]")
        check_float("select_half_life", self.select_half_life, 0.0, 1e9, lo_open=True)
        self.eval_levels = tuple(int(lv) for lv in self.eval_levels)
        if not self.eval_levels or any(not 1 <= lv <= 4 for lv in self.eval_levels):
            raise ConfigError("eval_levels", list(self.eval_levels), "one or more integers among 1-4")
        if not self.output_dir:
            raise ConfigError("output_dir", self.output_dir, "a folder path")
        for name in ("seed", "eval_seed"):
            check_int(name, getattr(self, name), 0)
        check_int("stage_workers", self.stage_workers, 1, 2)
        for name, lo in (("threads", 1), ("pool_per_family", 10), ("base_steps", 1), ("base_small_steps", 1), ("select_n", 1),
                         ("batch_size", 1), ("block_size", 32), ("eval_per_family", 1), ("majority_n", 0),
                         ("rejection_max_attempts", 1), ("eval_batch_size", 1)):
            check_int(name, getattr(self, name), lo)
        if not self.families:
            raise ConfigError("families", self.families, "at least one of " + ", ".join(FAMILIES))
        for fam in self.families:
            check_choice("families", fam, tuple(FAMILIES))
        check_choice("ablation_from", self.ablation_from, ("quality", "domains"))
        for abl in self.ablations:
            check_choice("ablations", abl, SELECT_ABLATIONS)
        check_float("mistake_rate", self.mistake_rate, 0.0, 0.99)
        for name in ("check_rate", "correction_rate"):
            if getattr(self, name) is not None:
                check_float(name, getattr(self, name), 0.0, 1.0)
        self.pool_correction_rates = tuple(str(e) for e in self.pool_correction_rates)
        self.family_correction_rates()
        check_float("base_worked_share", self.base_worked_share, 0.0, 1.0)
        for name in ("base_lr", "sft_lr"):
            check_float(name, getattr(self, name), 0.0, 1.0, lo_open=True)
        check_float("sft_epochs", self.sft_epochs, 0.0, 1000.0, lo_open=True)
        check_float("full_budget_factor", self.full_budget_factor, 0.0, 100.0, lo_open=True)
        check_float("majority_temperature", self.majority_temperature, 0.0, 100.0, lo_open=True)
        for name in ("cap_fractions", "rejection_fractions"):
            values = getattr(self, name)
            if any(not 0.0 <= v <= 4.0 for v in values):
                raise ConfigError(name, list(values), "fractions in [0, 4]")
        if not self.cap_fractions:
            raise ConfigError("cap_fractions", (), "at least one fraction")
        if not self.waits or any(w < 0 for w in self.waits):
            raise ConfigError("waits", list(self.waits), "integers >= 0, at least one")
        for name in ("base_small", "base_large"):
            if not str(getattr(self, name)).startswith("tiny:"):
                raise ConfigError(name, getattr(self, name), "a 'tiny:KEY=VAL,...' model spec")

    def family_correction_rates(self) -> dict[str, float]:
        """``pool_correction_rates`` as {family: rate} (validated)."""
        out: dict[str, float] = {}
        for entry in self.pool_correction_rates:
            fam, _, rate = entry.partition("=")
            try:
                out[fam.strip()] = float(rate)
            except ValueError:
                raise ConfigError("pool_correction_rates", entry, "family=rate entries") from None
            if fam.strip() not in self.families:
                raise ConfigError("pool_correction_rates", entry, "families of this run: " + ", ".join(self.families))
            check_float("pool_correction_rates", out[fam.strip()], 0.0, 1.0)
        return out

    @classmethod
    def from_recipe(cls, path: str | None, overrides: dict[str, Any] | None = None) -> "RunConfig":
        """The recipe's ``run:`` section, then ``overrides``; ``smoke`` shrinks everything."""
        from s1kit.config import load_yaml

        values = dict((load_yaml(path) or {}).get("run") or {}) if path else {}
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(values) - known):
            raise ConfigError(unknown[0], values[unknown[0]], "a field of RunConfig: " + ", ".join(sorted(known)))
        cfg = cls(**values)
        return cfg.smoke_version() if cfg.smoke else cfg

    def smoke_version(self) -> "RunConfig":
        """Everything small: a few minutes on 2 cores, same code paths (used by the tests)."""
        return replace(self, pool_per_family=min(self.pool_per_family, 150), base_steps=min(self.base_steps, 30),
                       base_small_steps=min(self.base_small_steps, 30),
                       select_n=min(self.select_n, 40), sft_epochs=min(self.sft_epochs, 1.0),
                       eval_per_family=min(self.eval_per_family, 4), majority_n=min(self.majority_n, 2),
                       rejection_max_attempts=min(self.rejection_max_attempts, 2),
                       cap_fractions=(0.1, 0.2), cap_quantiles=(0.0, 0.1) if self.cap_quantiles else (),
                       full_budget_factor=0.25, waits=self.waits[:2],
                       rejection_fractions=(0.2,), ablations=self.ablations[:1],
                       base_small=_shrink(self.base_small), base_large=_shrink(self.base_large, seed=1))

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @property
    def root(self) -> Path:
        return Path(self.output_dir)


def _shrink(spec: str, seed: int = 0) -> str:
    """A tiny: spec at hidden 32 (smoke runs test the plumbing, not learning)."""
    from s1kit.train.tiny import TINY_KEYS, parse_spec

    _, values = parse_spec(spec, TINY_KEYS, "model")
    values.update(hidden=32, ffn=64, layers=min(values["layers"], 2), seed=seed)
    return "tiny:" + ",".join(f"{k}={v}" for k, v in values.items())
