"""Several seeds of the embedded default: one full run per seed, then one combined findings table.

    s1kit run recipes/tiny.yaml --seeds 0,1,2     # runs/tiny/seed0, seed1, seed2 + runs/tiny/seeds.md

Each seed is the recipe with ``seed`` replaced (the pool, the base models' initialisation and
data order, the selection and the SFT order; the evaluation set stays the same, ``eval_seed``)
and its own output folder ``<output_dir>/seed<N>`` with its own report. The combined table has
one line per finding (the rows of s1kit.pipeline.findings) and one column per seed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from s1kit.config import ConfigError
from s1kit.pipeline.config import RunConfig

log = logging.getLogger(__name__)


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> [0, 1, 2]; a bad list fails naming the option."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError("seeds", text, "comma-separated integers >= 0, e.g. 0,1,2") from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ConfigError("seeds", text, "comma-separated distinct integers >= 0, e.g. 0,1,2")
    return seeds


def seed_config(cfg: RunConfig, seed: int) -> RunConfig:
    return replace(cfg, seed=seed, output_dir=str(Path(cfg.output_dir) / f"seed{seed}"), open_report=False)


def run_seeds(cfg: RunConfig, seeds: list[int]) -> Path:
    """Run the pipeline once per seed; returns the combined table (``<output_dir>/seeds.md``)."""
    from s1kit.pipeline.run import run_pipeline

    reports = {}
    for seed in seeds:
        log.info("seed %d of %s", seed, seeds)
        html = run_pipeline(seed_config(cfg, seed))
        reports[seed] = json.loads((html.parent / "report.json").read_text())
    return write_combined(Path(cfg.output_dir), reports)


def combined_rows(reports: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """[{'key', 'finding', 'seeds': {seed: row}}]: the findings of every seed side by side."""
    table: dict[str, dict[str, Any]] = {}
    for seed, report in reports.items():
        for row in report["rows"]:
            entry = table.setdefault(row["key"], {"key": row["key"], "finding": row["finding"], "seeds": {}})
            entry["seeds"][seed] = row
    return list(table.values())


def write_combined(root: Path, reports: dict[int, dict[str, Any]]) -> Path:
    rows = combined_rows(reports)
    seeds = list(reports)
    lines = ["# The embedded default on several seeds", "",
             "One column per seed: measured [95% CI] and verdict (reports: " +
             ", ".join(f"seed{s}/report/report.md" for s in seeds) + ").", "",
             "| finding | " + " | ".join(f"seed {s}" for s in seeds) + " |",
             "|---|" + "---|" * len(seeds)]
    for entry in rows:
        cells = []
        for s in seeds:
            r = entry["seeds"].get(s)
            cells.append("-" if r is None else f"{r['measured']} {r['ci']} **{r['verdict']}**".replace("  ", " "))
        lines.append(f"| {entry['finding']} | " + " | ".join(cells) + " |")
    walls = {s: reports[s].get("wall_seconds") for s in seeds}
    lines += ["", "Wall time per seed: " + ", ".join(f"seed {s} {w / 60:.1f} min" for s, w in walls.items() if w), ""]
    root.mkdir(parents=True, exist_ok=True)
    (root / "seeds.json").write_text(json.dumps({"seeds": seeds, "rows": rows, "wall_seconds": walls}, indent=2))
    out = root / "seeds.md"
    out.write_text("\n".join(lines), encoding="utf-8")
    return out
