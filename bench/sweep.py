"""Budget sweep cost: the shared-prefix sweep vs independent runs per point (the s1 way).

    python bench/sweep.py                 # 6 budgets x {0, 2} Waits, 16 MATH500 prompts, ~5 minutes
    python bench/sweep.py --prompts 4     # quicker

Same model as bench/forcing.py (random Qwen2, ~40M params, real Qwen vocabulary, early stops on
about 1% of steps), greedy. Three measurements in one run: (1) the largest single point alone
(cap 512, 2 Waits), (2) the whole 12-point sweep from one longest run with branching, (3) the 12
points run independently. Checks that (2) gives the same tokens as (3) at every point, prints a
table and writes bench/results/sweep.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

BUDGETS = [32, 64, 128, 192, 256, 512]
WAITS = [0, 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--answer-tokens", type=int, default=32)
    parser.add_argument("--output", default=str(ROOT / "bench/results/sweep.json"))
    args = parser.parse_args()
    from transformers import AutoTokenizer

    from forcing import SHARED, build_model, load_prompts
    from s1kit.backends.base import Request
    from s1kit.backends.hf import HFBackend
    from s1kit.eval.sweep import SweepStats, sweep
    from s1kit.forcing import BudgetPolicy

    tok = AutoTokenizer.from_pretrained(str(SHARED / "tokenizers/qwen"))
    model, params = build_model(tok)
    prompts = load_prompts(tok, args.prompts)
    backend = HFBackend(model, tok, batch_size=len(prompts))
    policy = BudgetPolicy(max_answer_tokens=args.answer_tokens)
    backend.generate([Request(p, policy.replace(max_thinking_tokens=8), key="w") for p in prompts])  # warm-up

    def run_point(budget, waits):
        single = policy.replace(max_thinking_tokens=budget, num_ignore=waits)
        return backend.generate([Request(p, single, key=str(i)) for i, p in enumerate(prompts)])

    t0 = time.perf_counter()
    run_point(max(BUDGETS), max(WAITS))
    largest_s = time.perf_counter() - t0

    stats = SweepStats()
    t0 = time.perf_counter()
    swept = sweep(backend, prompts, BUDGETS, WAITS, policy, stats=stats,
                  branch_batch_size=len(prompts) * len(BUDGETS) * len(WAITS))
    sweep_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    independent = {pt: run_point(pt.budget, pt.waits) for pt in swept}
    independent_s = time.perf_counter() - t0
    identical = all([r.ids for r in swept[pt]] == [r.ids for r in independent[pt]] for pt in swept)

    curve = [{"budget": pt.budget, "waits": pt.waits,
              "mean_thinking_tokens": round(sum(r.thinking_tokens for r in res) / len(res), 1),
              "share_capped": round(sum(r.forced_end for r in res) / len(res), 2)} for pt, res in sorted(swept.items())]
    row = {"points": len(swept), "prompts": len(prompts), "largest_single_s": round(largest_s, 2),
           "sweep_s": round(sweep_s, 2), "independent_s": round(independent_s, 2),
           "sweep_over_largest": round(sweep_s / largest_s, 2),
           "independent_over_sweep": round(independent_s / sweep_s, 2), "identical_tokens": identical,
           "long_tokens": stats.long_tokens, "branch_tokens": stats.branch_tokens, "reused_points": stats.reused}
    print(f"model: {params / 1e6:.1f}M params, fp32, {torch.get_num_threads()} threads; budgets {BUDGETS}, waits {WAITS}\n")
    print("| points x prompts | largest single run s | shared-prefix sweep s | independent runs s | "
          "sweep / largest | independent / sweep | identical |\n|---|---|---|---|---|---|---|")
    print(f"| {row['points']} x {row['prompts']} | {row['largest_single_s']} | {row['sweep_s']} | "
          f"{row['independent_s']} | {row['sweep_over_largest']}x | {row['independent_over_sweep']}x | {identical} |")
    print("\n| budget | waits | mean thinking tokens | share capped |\n|---|---|---|---|")
    for c in curve:
        print(f"| {c['budget']} | {c['waits']} | {c['mean_thinking_tokens']} | {c['share_capped']} |")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"params": params, "summary": row, "curve": curve}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
