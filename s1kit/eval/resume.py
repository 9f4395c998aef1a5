"""Resuming an eval run: which samples are on disk, which problems are complete, and whether the
samples were made with this run's settings (see :mod:`s1kit.io` and :mod:`s1kit.stagecache`).

Nothing here writes before the settings check has passed: a refused rerun leaves every file of
the output folder as it was.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from s1kit.config import check_input_file, check_model_path, check_output_dir, check_tokenizer_path
from s1kit.forcing import BudgetPolicy
from s1kit.io import iter_rows, scan_jsonl, write_jsonl_atomic
from s1kit.stagecache import check_resume, model_identity, stage_settings

log = logging.getLogger(__name__)


def check_paths(cfg) -> None:
    """Every file and folder the run needs, checked before any model is loaded (ConfigError)."""
    if cfg.backend == "openai":  # the server holds the model; the tokenizer is local
        check_tokenizer_path("tokenizer", cfg.tokenizer or "")
    else:
        check_model_path("model", cfg.model)
    check_output_dir("output_dir", cfg.output_dir)
    for item in cfg.data:
        check_input_file("data", item.split("=", 1)[1])


def open_samples(cfg, policy: BudgetPolicy, samples_path: Path):
    """Scan the samples and check the settings they were made with; reads only (a refused rerun
    leaves every file as it was). Returns the scan and the settings to record."""
    check_paths(cfg)
    scan = scan_jsonl(samples_path, check=sample_key)
    settings = check_resume(samples_path.parent / "settings.json", row_settings(cfg, policy), scan.size > 0,
                            "output_dir", cfg.output_dir)
    return scan, settings


def sample_key(row: dict[str, Any]) -> tuple:
    return str(row["benchmark"]), str(row["id"]), point_of(row)


def expected_points(cfg, budgets: list[int]) -> dict[str, set[tuple]]:
    """Per configured method, the (budget, waits, sample) keys every problem must have."""
    expected = {"budget_forcing": {(b, w, None) for b in budgets for w in cfg.wait_list()}}
    if cfg.majority_n:
        cap = cfg.majority_budget or max(budgets)
        expected["majority_voting"] = {(cap, 0, j) for j in range(cfg.majority_n)}
    if cfg.rejection_budgets:
        expected["rejection_sampling"] = {(int(b), 0, None) for b in cfg.rejection_budgets}
    return expected


def point_of(row: dict[str, Any]) -> tuple:
    return row.get("budget"), row.get("waits"), row.get("sample")


def done_problems(samples: list[dict[str, Any]], bench: str, expected: dict[str, set[tuple]]) -> set[tuple[str, str]]:
    """(method, id) of the benchmark's problems with every expected row of a method present."""
    from s1kit.eval.summary import method_of

    present: dict[tuple[str, str], set[tuple]] = {}
    for r in samples:
        if r["benchmark"] == bench:
            present.setdefault((method_of(r), r["id"]), set()).add(point_of(r))
    return {key for key, points in present.items() if key[0] in expected and expected[key[0]] <= points}


def drop_incomplete(path: Path, bench: str, done: set[tuple[str, str]], expected: dict[str, set[tuple]]) -> None:
    """Rewrite the samples keeping, for this benchmark, only complete (method, problem)s and the
    configured points (and no torn line), so what a crash cut short is regenerated without
    duplicate rows; other benchmarks' rows are kept as they are."""
    if not path.exists():
        return
    from s1kit.eval.summary import method_of

    def keep(r: dict[str, Any]) -> bool:
        if r["benchmark"] != bench:
            return True
        method = method_of(r)
        return (method, r["id"]) in done and point_of(r) in expected[method]

    rows = read_samples(path)
    kept = [r for r in rows if keep(r)]
    if len(kept) < len(rows):
        log.info("%s: dropping %d rows of incomplete or unconfigured points (regenerated if configured)",
                 bench, len(rows) - len(kept))
        write_jsonl_atomic(path, kept)


def read_samples(path: Path) -> list[dict[str, Any]]:
    """The valid rows (bad lines were set aside by the resume scan; see s1kit.io)."""
    return list(iter_rows(path))


# Fields that choose which rows a run needs or how fast it runs, not what a row holds: a resumed
# run may change them (problems already done under other budgets simply gain the new points).
NOT_ROW_SETTINGS = frozenset({"benchmarks", "data", "limit", "synth_n", "budgets", "waits", "majority_n",
                               "rejection_budgets", "rejection_max_attempts", "output_dir", "batch_size",
                               "tensor_parallel_size", "engine_args", "device", "progress", "judge_api_key_env",
                               "judge_cache", "model", "revision", "api_key_env"})


def row_settings(cfg, policy: BudgetPolicy) -> dict[str, Any]:
    """What decides a sample row's content: the model's identity, decoding, prompts and grading."""
    swept = {"max_thinking_tokens", "num_ignore"}  # budgets and waits label each row
    return stage_settings(cfg, NOT_ROW_SETTINGS, model=model_identity(cfg.model, cfg.revision),
                          policy={k: v for k, v in policy.to_dict().items() if k not in swept})
