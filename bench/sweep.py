"""Budget sweep cost: the shared-prefix sweep vs independent runs per point (the s1 way).

    python bench/sweep.py                         # 6 budgets x {0, 2} Waits, 8 MATH500 prompts, best of 3
    python bench/sweep.py --prompts 4 --repeats 1 # quicker

Same model as bench/forcing.py (random Qwen2, ~40M params, real Qwen vocabulary, early stops on
about 1% of steps), greedy. Three measurements in one run: (1) the largest single point alone
(cap 512, 2 Waits), (2) the whole 12-point sweep from one longest run with branching, (3) the 12
points run independently (how s1's harness computes a curve). The three are timed in
``--repeats`` interleaved rounds and each keeps its fastest round, in wall seconds and in the
process's CPU seconds: on a shared machine the wall clock of one measurement depends on what the
neighbours do at that moment, the CPU time of a single-threaded run much less. Checks that (2)
gives the same tokens as (3) at every point, prints a table with the two ratios against the
issue's targets (sweep <= 1.5x the largest single run, independent >= 3x the sweep) and writes
bench/results/sweep.json.
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
TARGET_SWEEP_OVER_LARGEST = 1.5
TARGET_INDEPENDENT_OVER_SWEEP = 3.0


def timed_rounds(repeats: int, funcs: dict):
    """Interleaved rounds of every measurement: {name: (best wall s, best CPU s, last result)}."""
    best = {name: [float("inf"), float("inf"), None] for name in funcs}
    for _ in range(repeats):
        for name, func in funcs.items():
            w0, c0 = time.perf_counter(), time.process_time()
            out = func()
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            best[name] = [min(best[name][0], wall), min(best[name][1], cpu), out]
    return {name: tuple(v) for name, v in best.items()}


def ratios(largest: float, swept: float, independent: float) -> dict:
    return {"largest_single_s": round(largest, 2), "sweep_s": round(swept, 2), "independent_s": round(independent, 2),
            "sweep_over_largest": round(swept / largest, 2), "independent_over_sweep": round(independent / swept, 2),
            "meets_sweep_target": swept / largest <= TARGET_SWEEP_OVER_LARGEST,
            "meets_independent_target": independent / swept >= TARGET_INDEPENDENT_OVER_SWEEP}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="time each measurement this often, keep the fastest")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--answer-tokens", type=int, default=32)
    parser.add_argument("--output", default=str(ROOT / "bench/results/sweep.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
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

    def run_sweep():
        stats = SweepStats()
        return stats, sweep(backend, prompts, BUDGETS, WAITS, policy, stats=stats,
                            branch_batch_size=len(prompts) * len(BUDGETS) * len(WAITS))

    points = [(b, w) for b in BUDGETS for w in WAITS]
    timed = timed_rounds(args.repeats, {
        "largest": lambda: run_point(max(BUDGETS), max(WAITS)),
        "sweep": run_sweep,
        "independent": lambda: {(b, w): run_point(b, w) for b, w in points}})
    stats, swept = timed["sweep"][2]
    independent = {pt: timed["independent"][2][(pt.budget, pt.waits)] for pt in swept}
    wall = ratios(timed["largest"][0], timed["sweep"][0], timed["independent"][0])
    cpu = ratios(timed["largest"][1], timed["sweep"][1], timed["independent"][1])
    identical = all([r.ids for r in swept[pt]] == [r.ids for r in independent[pt]] for pt in swept)

    curve = [{"budget": pt.budget, "waits": pt.waits,
              "mean_thinking_tokens": round(sum(r.thinking_tokens for r in res) / len(res), 1),
              "share_capped": round(sum(r.forced_end for r in res) / len(res), 2)} for pt, res in sorted(swept.items())]
    row = {"points": len(swept), "prompts": len(prompts), "repeats": args.repeats, **wall,
           "cpu": cpu, "identical_tokens": identical, "long_tokens": stats.long_tokens,
           "branch_tokens": stats.branch_tokens, "reused_points": stats.reused,
           "shared_points": stats.shared}
    print(f"model: {params / 1e6:.1f}M params, fp32, {torch.get_num_threads()} threads; budgets {BUDGETS}, "
          f"waits {WAITS}; best of {args.repeats}\n")
    print("| clock | points x prompts | largest single run s | shared-prefix sweep s | independent runs s | "
          f"sweep / largest (target <= {TARGET_SWEEP_OVER_LARGEST}x) | independent / sweep "
          f"(target >= {TARGET_INDEPENDENT_OVER_SWEEP}x) | identical |\n|---|---|---|---|---|---|---|---|")
    for clock, r in (("wall", wall), ("CPU", cpu)):
        print(f"| {clock} | {row['points']} x {row['prompts']} | {r['largest_single_s']} | {r['sweep_s']} | "
              f"{r['independent_s']} | {r['sweep_over_largest']}x {'ok' if r['meets_sweep_target'] else 'MISSED'} | "
              f"{r['independent_over_sweep']}x {'ok' if r['meets_independent_target'] else 'MISSED'} | {identical} |")
    print(f"\ntokens decoded: longest runs {stats.long_tokens}, branches {stats.branch_tokens}; points equal to the "
          f"longest run {stats.reused}, sharing another point's branch {stats.shared}")
    print("\n| budget | waits | mean thinking tokens | share capped |\n|---|---|---|---|")
    for c in curve:
        print(f"| {c['budget']} | {c['waits']} | {c['mean_thinking_tokens']} | {c['share_capped']} |")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"params": params, "summary": row, "curve": curve}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
