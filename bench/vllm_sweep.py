"""vLLM budget sweep cost: one longest run + answer continuations vs the largest point vs per-point requests.

    .venv-vllm/bin/python bench/vllm_sweep.py                 # 6 caps x 3 Wait counts, 8 prompts, best of 2
    .venv-vllm/bin/python bench/vllm_sweep.py --prompts 4 --repeats 1

Needs vLLM (bash scripts/vllm_env.sh). Model: bench/forcing.py's random Qwen2 (~40M params, the
real Qwen vocabulary, early stops on ~1% of steps), fp32, one processor-mode engine with prefix
caching, greedy. Three measurements on the same engine in one run, interleaved ``--repeats``
times (each keeps its fastest round; vLLM's prefix cache is reset before every measurement, so
none reuses another's blocks): (1) the largest point alone (largest cap, most Waits); (2) the
whole sweep from one run (``s1kit.eval.sweep.sweep``: the longest run, then one answer-phase
continuation per distinct branch, its prefix served by the prefix cache); (3) every point as its
own request, all submitted together (what ``s1kit eval --backend vllm`` did before). Checks that
(2) equals (3) token for token at every point, prints a Markdown table with the ratios against the
target (sweep <= 1.5x the largest point) and writes bench/results/vllm_sweep.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

BUDGETS = [32, 64, 128, 192, 256, 512]
WAITS = [0, 1, 2]
TARGET_SWEEP_OVER_LARGEST = 1.5


def measure(backend, repeats: int, funcs: dict) -> dict:
    """Interleaved rounds on one engine, the prefix cache emptied before each: {name: (best s, result)}."""
    best = {name: (float("inf"), None) for name in funcs}
    for _ in range(repeats):
        for name, func in funcs.items():
            if not backend.llm.reset_prefix_cache():
                raise RuntimeError("vLLM could not reset its prefix cache (requests still running?)")
            start = time.perf_counter()
            out = func()
            best[name] = (min(best[name][0], time.perf_counter() - start), out)
    return best


def run(backend, prompts, policy, repeats: int) -> tuple[dict, dict]:
    from s1kit.backends.base import Request
    from s1kit.eval.sweep import SweepPoint, SweepStats, sweep

    keys = [str(i) for i in range(len(prompts))]
    points = [SweepPoint(b, w) for b in BUDGETS for w in WAITS]

    def requests(pt):
        single = policy.replace(max_thinking_tokens=pt.budget, num_ignore=pt.waits)
        return [Request(p, single, key=keys[i]) for i, p in enumerate(prompts)]

    def per_point():
        res = backend.generate([r for pt in points for r in requests(pt)])
        return {pt: res[k * len(prompts):(k + 1) * len(prompts)] for k, pt in enumerate(points)}

    def swept():
        stats = SweepStats()
        return stats, sweep(backend, prompts, BUDGETS, WAITS, policy, keys=keys, stats=stats)

    backend.generate(requests(SweepPoint(8, 1)))  # warm-up
    best = measure(backend, repeats, {"largest": lambda: backend.generate(requests(points[-1])),
                                      "sweep": swept, "per_point": per_point})
    stats, curve = best["sweep"][1]
    ref = best["per_point"][1]
    fields = ("ids", "thinking_tokens", "answer_tokens", "waits_injected", "forced_end", "finish_reason")
    def rows(results):
        return [[getattr(r, f) for f in fields] for r in results]

    identical = all(rows(curve[pt]) == rows(ref[pt]) for pt in points)
    largest, sweep_s, per_s = (best[k][0] for k in ("largest", "sweep", "per_point"))
    summary = {"points": len(points), "prompts": len(prompts), "repeats": repeats,
               "largest_point_s": round(largest, 2), "sweep_s": round(sweep_s, 2), "per_point_s": round(per_s, 2),
               "sweep_over_largest": round(sweep_s / largest, 3), "per_point_over_largest": round(per_s / largest, 3),
               "per_point_over_sweep": round(per_s / sweep_s, 3),
               "meets_target": sweep_s / largest <= TARGET_SWEEP_OVER_LARGEST, "identical_tokens": identical,
               "long_tokens": stats.long_tokens, "branch_tokens": stats.branch_tokens,
               "reused_points": stats.reused, "shared_points": stats.shared, "fallbacks": stats.fallbacks,
               "per_point_tokens": sum(len(r.ids) for res in ref.values() for r in res)}
    table = [{"budget": pt.budget, "waits": pt.waits,
              "mean_thinking_tokens": round(sum(r.thinking_tokens for r in curve[pt]) / len(prompts), 1),
              "share_capped": round(sum(r.forced_end for r in curve[pt]) / len(prompts), 2)} for pt in points]
    return summary, {"curve": table}


def report(s: dict, meta: dict) -> str:
    return "\n".join([
        f"model: {meta['params'] / 1e6:.1f}M params, fp32, vLLM {meta['vllm']} on {meta['cpu']} "
        f"({meta['cores']} cores, load average at the end {meta['load_average'][0]:.1f}); caps {BUDGETS}, "
        f"waits {WAITS}; best of {s['repeats']}",
        "",
        "| points x prompts | largest point s | sweep from one run s | per-point requests s | sweep / largest "
        f"(target <= {TARGET_SWEEP_OVER_LARGEST}x) | per-point / largest | per-point / sweep | identical |",
        "|---|---|---|---|---|---|---|---|",
        f"| {s['points']} x {s['prompts']} | {s['largest_point_s']} | {s['sweep_s']} | {s['per_point_s']} | "
        f"{s['sweep_over_largest']}x {'ok' if s['meets_target'] else 'MISSED'} | {s['per_point_over_largest']}x | "
        f"{s['per_point_over_sweep']}x | {s['identical_tokens']} |",
        "",
        f"tokens: longest runs {s['long_tokens']}, after the branch points {s['branch_tokens']} (per-point requests "
        f"{s['per_point_tokens']}); points equal to the longest run {s['reused_points']}, sharing another point's "
        f"continuation {s['shared_points']}, run on their own {s['fallbacks']}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds; each measurement keeps its fastest")
    parser.add_argument("--answer-tokens", type=int, default=32)
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--output", default=str(ROOT / "bench/results/vllm_sweep.json"))
    args = parser.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB: plenty for a 40M model
    import torch
    import vllm
    from transformers import AutoTokenizer

    from forcing_vllm import SHARED, build_model_dir, load_prompts
    from s1kit.backends.vllm import VLLMBackend
    from s1kit.forcing import BudgetPolicy

    tok = AutoTokenizer.from_pretrained(str(SHARED / "tokenizers/qwen"))
    prompts = load_prompts(tok, args.prompts)
    engine_args = dict(dtype="float32", enforce_eager=True, gpu_memory_utilization=0.3,
                       max_model_len=args.max_model_len, max_num_seqs=256, enable_prefix_caching=True, seed=0)
    with tempfile.TemporaryDirectory(prefix="s1kit-bench-vllm-sweep-") as folder:
        params = build_model_dir(tok, Path(folder))
        backend = VLLMBackend.from_pretrained(folder, mode="processor", **engine_args)
        summary, extra = run(backend, prompts, BudgetPolicy(max_answer_tokens=args.answer_tokens), args.repeats)
    meta = {"params": params, "vllm": vllm.__version__, "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "budgets": BUDGETS,
            "waits": WAITS, "answer_tokens": args.answer_tokens, "engine_args": engine_args,
            "load_average": os.getloadavg()}
    print(report(summary, meta))
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "summary": summary, **extra}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
