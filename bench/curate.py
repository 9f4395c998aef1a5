"""Benchmark of the whole curation funnel (`run_curate`, every stage, files and manifests) on synthetic pools.

    python bench/curate.py [--sizes 6000 60000] [--out bench/results/curate.json] [--tokenizer chars]

No network teacher: each pool row already carries a synthetic thinking trace and attempt (as rows
from a filled distillation cache do), and a synthetic solver's outputs are given as an
``s1kit generate``-style JSONL, so the difficulty stage grades 1 solver answer and 1 teacher
attempt per row with ``s1kit.eval.grade``. Pools come from ``bench/curate_core.py`` (planted
contamination, exact/near duplicates, quality violations) and are written as a local source file;
the collect stage reads them back. Each size runs in a fresh subprocess so its peak RSS
(``resource.getrusage``) is its own; the bench sets ``OMP_NUM_THREADS=1``. Trace lengths use the
offline Qwen tokenizer from ``../shared/tokenizers/qwen`` when present (``--tokenizer chars``
otherwise). Targets at 60K: <= 5 min wall, <= 4 GB peak RSS.
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
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from curate_core import BENCH_DIR, build_pool, vocabulary  # noqa: E402

from s1kit.data.curate import CurateConfig, run_curate, stage_output  # noqa: E402
from s1kit.data.manifest import package_versions  # noqa: E402

QWEN = ROOT.parent / "shared/tokenizers/qwen"
TARGET_SECONDS, TARGET_MIB = 300, 4096
SOLVER_CORRECT = 0.55  # s1: about 24.5K of 51.6K questions survived the difficulty filter


def peak_rss_mib() -> float:
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def write_inputs(size: int, seed: int, work: Path) -> dict[str, Any]:
    """The pool as a local source file, a synthetic solver's outputs and the benchmark files."""
    rows, bench, info = build_pool(size, seed)
    rng = random.Random(seed + 1)
    vocab = vocabulary(rng, 3000)
    solver_lines = []
    with open(work / "pool.jsonl", "w", encoding="utf-8") as fh:
        for row in rows:
            # a trace of 50-1,500 words (lognormal) and an attempt that is right 70% of the time
            n_words = min(1500, max(50, int(rng.lognormvariate(5.5, 0.7))))
            row["thinking"] = " ".join(rng.choices(vocab, k=n_words))
            right = rng.random() < 0.7
            row["attempt"] = f"Answer: {row['answer'] if right else int(row['answer']) + 1}"
            row.pop("trace_tokens"), row.pop("teacher_correct")  # the pipeline computes both
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            solved = rng.random() < SOLVER_CORRECT
            solver_lines.append({"id": row["id"], "sample": 0,
                                 "text": f"Answer: {row['answer'] if solved else int(row['answer']) + 7}"})
    with open(work / "solver.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(x) + "\n" for x in solver_lines)
    if info["benchmarks"] == "synthetic":
        (work / "bench").mkdir()
        with open(work / "bench" / "synthetic.jsonl", "w") as fh:
            fh.writelines(json.dumps({"problem": t}) + "\n" for t in bench["synthetic"])
        info["benchmark_dir"] = str(work / "bench")
    else:
        info["benchmark_dir"] = str(BENCH_DIR)
    return info


def run_size(size: int, seed: int, tokenizer: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="s1kit-bench-curate-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        info = write_inputs(size, seed, work)
        info["build_seconds"] = round(time.perf_counter() - t0, 2)
        info["rss_after_build_mib"] = round(peak_rss_mib(), 1)
        pool = {"path": str(work / "pool.jsonl"), "source": "pool"}
        cfg = CurateConfig(output_dir=str(work / "run"), sources=(pool,),
                           benchmarks=(info["benchmark_dir"],), tokenizer=tokenizer,
                           solver_outputs=(f"solver={work / 'solver.jsonl'}",), domains="field", n=1000, seed=seed,
                           progress=False)
        t0 = time.perf_counter()
        result = run_curate(cfg)
        wall = time.perf_counter() - t0
        stages = []
        for m in result["manifests"]:
            stages.append({"stage": m["stage"], "rows_in": m["count_in"], "rows_out": m["count_out"],
                           "wall_seconds": m["wall_seconds"], "drops": m["drops"]})
        t0 = time.perf_counter()
        cached = run_curate(cfg)  # every stage cached: the cost of a no-op rerun
        rerun = time.perf_counter() - t0
        final_rows = sum(1 for _ in open(result["output"]["jsonl"]))
        sizes = {s: stage_output(cfg, s).stat().st_size for s in ("collect", "select") if stage_output(cfg, s).exists()}
    return {"size": size, "wall_seconds": round(wall, 2), "cached_rerun_seconds": round(rerun, 2),
            "peak_rss_mib": round(peak_rss_mib(), 1), "stages": stages, "funnel": result["funnel"],
            "cached_funnel_same": cached["funnel"] == result["funnel"], "final_rows": final_rows,
            "stage_file_bytes": sizes, "tokenizer": tokenizer, **info}


def run_in_subprocess(size: int, seed: int, tokenizer: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--one", str(size), "--seed", str(seed), "--tokenizer", tokenizer]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"size {size} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.splitlines()[-1])


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| rows | stage | in | out | wall s |", "| ---: | --- | ---: | ---: | ---: |"]
    for res in results:
        for s in res["stages"]:
            lines.append(f"| {res['size']:,} | {s['stage']} | {s['rows_in']:,} | {s['rows_out']:,} | "
                         f"{s['wall_seconds']:.2f} |")
        lines.append(f"| {res['size']:,} | **total (run_curate)** | | | {res['wall_seconds']:.2f} |")
    lines += ["", "| rows | wall s | cached rerun s | peak RSS MiB | within 5 min / 4 GB |",
              "| ---: | ---: | ---: | ---: | --- |"]
    for res in results:
        ok = res["wall_seconds"] <= TARGET_SECONDS and res["peak_rss_mib"] <= TARGET_MIB
        lines.append(f"| {res['size']:,} | {res['wall_seconds']:.1f} | {res['cached_rerun_seconds']:.1f} | "
                     f"{res['peak_rss_mib']:.0f} | {'yes' if ok else 'NO'} |")
    return "\n".join(lines)


def growth(results: list[dict[str, Any]]) -> dict[str, float]:
    small, large = results[0], results[-1]
    out = {a["stage"]: round(b["wall_seconds"] / max(a["wall_seconds"], 1e-9), 2)
           for a, b in zip(small["stages"], large["stages"])}
    out["total"] = round(large["wall_seconds"] / small["wall_seconds"], 2)
    out["rows"] = round(large["size"] / small["size"], 2)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[6000, 60000])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokenizer", default=str(QWEN) if (QWEN / "tokenizer.json").exists() else "chars")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/curate.json")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child mode: one size, JSON on stdout
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    if args.one:
        print(json.dumps(run_size(args.one, args.seed, args.tokenizer)))
        return 0
    results = [run_in_subprocess(size, args.seed, args.tokenizer) for size in args.sizes]
    report = {"results": results, "growth_wall_ratio": growth(results),
              "targets": {"wall_seconds": TARGET_SECONDS, "peak_rss_mib": TARGET_MIB},
              "environment": {"platform": platform.platform(), "cpus": os.cpu_count(), "omp_num_threads": 1,
                              **package_versions()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(table(results))
    print(f"\ngrowth {args.sizes[0]:,} → {args.sizes[-1]:,} rows (wall-time ratio): {report['growth_wall_ratio']}")
    print(f"funnel at {results[-1]['size']:,}: {results[-1]['funnel']}")
    print(f"wrote {args.out}")
    large = results[-1]
    return 0 if large["wall_seconds"] <= TARGET_SECONDS and large["peak_rss_mib"] <= TARGET_MIB else 1


if __name__ == "__main__":
    sys.exit(main())
