"""Benchmark of the CPU curation core: decontaminate → dedup → quality → select on synthetic pools.

    python bench/curate_core.py [--sizes 6000 60000] [--out bench/results/curate_core.json]

Each size runs in a fresh subprocess so that its peak RSS (``resource.getrusage``) is its own; the
RSS column is the process high-water mark after each stage. Pools are deterministic (seeded) and
carry planted contamination, exact and near duplicates and quality violations, whose detection
counts are checked against what was planted. Benchmarks come from ``../shared/data/benchmarks`` when
present, else a synthetic benchmark set (the JSON says which).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s1kit.data import (NgramIndex, decontaminate, dedup, load_benchmarks, quality_filter, select,  # noqa: E402
                        words)
from s1kit.data.dedup import _datasketch  # noqa: E402
from s1kit.data.manifest import funnel_markdown, package_versions, run_stage  # noqa: E402

logger = logging.getLogger("bench.curate_core")

BENCH_DIR = ROOT.parent / "shared/data/benchmarks"
SOURCES = [f"source_{i:02d}" for i in range(14)] + ["qq8933/AIME_1983_2024", "qfq/openaimath/Algebra"]
# AIME is rare and MATH common, as in s1's pool, so auto-include stays well under n=1000.
SOURCE_WEIGHTS = [89.5 / 14] * 14 + [0.5, 10.0]
DOMAINS = [f"msc_{i:02d}" for i in range(50)]
# Planted fractions of the pool (of the base questions for near duplicates).
PLANT = {"contaminated": 0.01, "duplicate_exact": 0.03, "duplicate_near": 0.02, "quality": 0.04}
QUALITY_SNIPPETS = ["[asy] draw((0,0)--(1,1)); [/asy]", "![fig](https://x.org/a.png)", "p1. also p2. ",
                    "**1.** "]


def vocabulary(rng: random.Random, size: int = 6000) -> list[str]:
    syllables = ["ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "vu", "ze", "qua", "dri", "sto", "ple"]
    vocab = {"".join(rng.choices(syllables, k=rng.randint(2, 4))) for _ in range(size * 2)}
    return sorted(vocab)[:size]


def benchmarks(rng: random.Random) -> tuple[dict[str, list[str]], str]:
    if BENCH_DIR.is_dir():
        return load_benchmarks(BENCH_DIR), str(BENCH_DIR)
    # English-free synthetic problems: disjoint from the pool vocabulary except where planted.
    return {"synthetic": [" ".join(f"bench{rng.randrange(10**6)}" for _ in range(40)) for _ in range(600)]}, "synthetic"


def build_pool(size: int, seed: int = 0) -> tuple[list[dict[str, Any]], dict[str, list[str]], dict[str, Any]]:
    """A deterministic pool of ``size`` rows with planted problems; returns rows, benchmarks, info."""
    rng = random.Random(seed)
    vocab = vocabulary(rng)
    bench, bench_from = benchmarks(rng)
    counts = {k: int(size * v) for k, v in PLANT.items()}
    n_base = size - counts["duplicate_exact"] - counts["duplicate_near"]
    rows = [base_row(rng, vocab, i) for i in range(n_base)]
    plant_contamination(rng, rows[:counts["contaminated"]], bench)
    plant_quality(rng, rows[counts["contaminated"]:counts["contaminated"] + counts["quality"]])
    clean = rows[counts["contaminated"] + counts["quality"]:]
    rows += [dict(r, id=f"x{j}", question="  " + r["question"].upper())
             for j, r in enumerate(rng.sample(clean, counts["duplicate_exact"]))]
    long_clean = [r for r in clean if len(r["question"].split()) >= 80]
    rows += [dict(r, id=f"n{j}", question=change_words(rng, r["question"], 2))
             for j, r in enumerate(rng.sample(long_clean, counts["duplicate_near"]))]
    rng.shuffle(rows)
    return rows, bench, {"planted": counts, "benchmarks": bench_from}


def base_row(rng: random.Random, vocab: list[str], i: int) -> dict[str, Any]:
    source = rng.choices(SOURCES, weights=SOURCE_WEIGHTS)[0]
    return {"id": f"b{i}", "question": " ".join(rng.choices(vocab, k=rng.randint(20, 120))) + "?",
            "solution": "sol", "answer": str(rng.randrange(1000)), "source": source, "cot_type": "math",
            "metadata": {}, "domain": rng.choice(DOMAINS), "trace_tokens": int(rng.lognormvariate(8, 0.8)),
            "teacher_correct": rng.random() < 0.4, "thinking": "t", "attempt": "a"}


def plant_contamination(rng: random.Random, rows: list[dict[str, Any]], bench: dict[str, list[str]]) -> None:
    texts = [t for name in sorted(bench) for t in bench[name] if len(words(t)) >= 12]
    for row in rows:
        toks = words(rng.choice(texts))
        start = rng.randrange(len(toks) - 10 + 1)
        row["question"] += " " + " ".join(toks[start:start + 10])


def plant_quality(rng: random.Random, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        row["question"] = rng.choice(QUALITY_SNIPPETS) + row["question"]


def change_words(rng: random.Random, question: str, k: int) -> str:
    toks = question.split()
    for pos in rng.sample(range(len(toks)), k):
        toks[pos] = f"changed{pos}"
    return " ".join(toks)


def peak_rss_mib() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def run_size(size: int, seed: int) -> dict[str, Any]:
    """Run the four stages on one pool size; returns per-stage rows, seconds and peak RSS."""
    start = time.perf_counter()
    rows, bench, info = build_pool(size, seed)
    info["build_seconds"] = round(time.perf_counter() - start, 3)
    stages: list[dict[str, Any]] = []
    manifests = []

    def timed(name: str, fn, params: dict[str, Any], recorded: dict[str, Any] | None = None) -> None:
        nonlocal rows
        rows, _, manifest = run_stage(name, fn, rows, params=params, recorded=recorded)
        manifests.append(manifest)
        stages.append({"stage": name, "rows_in": manifest.count_in, "rows_out": manifest.count_out,
                       "wall_seconds": manifest.wall_seconds, "peak_rss_mib": round(peak_rss_mib(), 1),
                       "drops": manifest.drops})

    t0 = time.perf_counter()
    _datasketch()  # import datasketch (and scipy) outside the timed dedup stage
    info["import_datasketch_seconds"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    index = NgramIndex.build(bench, n=8)
    info["index_seconds"] = round(time.perf_counter() - t0, 3)
    timed("decontaminate", decontaminate, {"benchmarks": index, "n": 8},
          recorded={"n": 8, "benchmarks": {k: len(v) for k, v in sorted(bench.items())}})
    timed("dedup", dedup, {"threshold": 0.8})
    timed("quality", quality_filter, {})
    timed("select", select, {"n": 1000, "seed": seed, "method": "s1k"})
    info["funnel_markdown"] = funnel_markdown(manifests)
    return {"size": size, "stages": stages, **info}


def found_vs_planted(result: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Per planted kind: (planted, found). ``found`` may fall a little short: an Asymptote row from
    an AIME source is exempt by design, and a near duplicate whose MinHash estimate lands under the
    threshold (true Jaccard about 0.85-0.9) is kept."""
    found = {reason: n for s in result["stages"] for reason, n in s["drops"].items()}
    quality = sum(n for r, n in found.items()
                  if r not in ("contaminated", "duplicate_exact", "duplicate_near", "not_selected"))
    found_by_kind = {"contaminated": found.get("contaminated", 0), "duplicate_exact": found.get("duplicate_exact", 0),
                     "duplicate_near": found.get("duplicate_near", 0), "quality": quality}
    return {k: (result["planted"][k], n) for k, n in found_by_kind.items()}


def shortfalls(result: dict[str, Any]) -> list[str]:
    return [f"{k}: planted {p}, found {f}" for k, (p, f) in found_vs_planted(result).items() if f < 0.95 * p]


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| rows | stage | in | out | wall s | peak RSS MiB |", "| ---: | --- | ---: | ---: | ---: | ---: |"]
    for res in results:
        for s in res["stages"]:
            lines.append(f"| {res['size']:,} | {s['stage']} | {s['rows_in']:,} | {s['rows_out']:,} | "
                         f"{s['wall_seconds']:.2f} | {s['peak_rss_mib']:.0f} |")
        total = sum(s["wall_seconds"] for s in res["stages"])
        lines.append(f"| {res['size']:,} | **total** | | | {total:.2f} | |")
    return "\n".join(lines)


def growth(results: list[dict[str, Any]]) -> dict[str, float]:
    """Wall-time ratio largest/smallest pool per stage and in total."""
    small, large = results[0], results[-1]
    ratios = {a["stage"]: round(b["wall_seconds"] / max(a["wall_seconds"], 1e-9), 2)
              for a, b in zip(small["stages"], large["stages"])}
    ratios["total"] = round(sum(s["wall_seconds"] for s in large["stages"]) /
                            sum(s["wall_seconds"] for s in small["stages"]), 2)
    return ratios


def run_in_subprocess(size: int, seed: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--one", str(size), "--seed", str(seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(proc.stdout.splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[6000, 60000])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/curate_core.json")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child mode: one size, JSON on stdout
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.one:
        print(json.dumps(run_size(args.one, args.seed)))
        return 0
    results = [run_in_subprocess(size, args.seed) for size in args.sizes]
    short = {r["size"]: shortfalls(r) for r in results}
    detection = {r["size"]: found_vs_planted(r) for r in results}
    report = {"results": results, "growth_wall_ratio": growth(results), "planted_vs_found": detection,
              "planted_shortfalls": short,
              "environment": {"platform": platform.platform(), "cpus": os.cpu_count(), **package_versions()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(table(results))
    print(f"\ngrowth {args.sizes[0]:,} → {args.sizes[-1]:,} rows (wall-time ratio): {report['growth_wall_ratio']}")
    for size, kinds in detection.items():
        print(f"planted → found at {size:,}: " + ", ".join(f"{k} {p} → {f}" for k, (p, f) in kinds.items()))
    print(f"\nfunnel at {results[-1]['size']:,} rows:\n\n{results[-1]['funnel_markdown']}")
    print(f"wrote {args.out}")
    return 1 if any(short.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
