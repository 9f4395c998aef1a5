"""Training throughput and MFU of the tiny recipe on this CPU, and a wall-time estimate for s1-32B on 16 H100s.

    python bench/train.py                    # recipes/tiny-train.yaml, 1 and 2 threads, 8 measured steps each, ~6 min
    python bench/train.py --threads 1 --model "tiny:hidden=256,layers=4,heads=4,kv_heads=4"

The run is the real training path (TRL SFTTrainer through s1kit.train.sft) in fp32 on CPU. Per
optimizer step: wall time (callback timestamps, the first `--warmup` steps dropped) and tokens
(TRL's count of non-padding tokens). Model FLOPs per step = 6·N·tokens + 12·L·d·T̄·tokens
(N: parameters, tied LM head counted once; the second term is attention scores and values,
forward + backward, at the mean sample length T̄, PaLM's convention). MFU divides model FLOP/s
by the fp32 matmul peak measured in the same run (best of several 4096² torch.matmul, same threads).

The 32B estimate uses the same FLOP formula for Qwen2.5-32B (N counted on the meta device) over
s1K (1000 samples x --tokens-per-sample x 5 epochs) against the public H100 SXM dense bf16 peak
(989 TFLOP/s) at the stated MFU assumptions. No GPU was used: it is arithmetic, not a measurement.
Results: a Markdown table on stdout and bench/results/train.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

ROOT = Path(__file__).resolve().parents[1]
H100_BF16_DENSE = 989e12
QWEN25_32B = {"vocab_size": 152064, "hidden_size": 5120, "intermediate_size": 27648, "num_hidden_layers": 64,
              "num_attention_heads": 40, "num_key_value_heads": 8, "tie_word_embeddings": False}


def matmul_peak(n: int = 4096, repeats: int = 6) -> float:
    """Best fp32 FLOP/s of an n x n matmul on this machine's current torch threads."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n ** 3 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def flops_per_token(n_params: int, layers: int, hidden: int, seq_len: float) -> float:
    return 6 * n_params + 12 * layers * hidden * seq_len


class StepTimer(TrainerCallback):
    """Timestamps at the first step's start and at each optimizer step's end."""

    def __init__(self):
        self.stamps: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):
        if not self.stamps:
            self.stamps.append(time.perf_counter())

    def on_step_end(self, args, state, control, **kwargs):
        self.stamps.append(time.perf_counter())


def run_tiny(args) -> dict:
    """Train the tiny recipe for warmup + steps optimizer steps; per-step times and tokens."""
    from s1kit.config import from_dict, load_yaml
    from s1kit.train import TrainConfig
    from s1kit.train.data import build_examples, load_rows
    from s1kit.train.sft import build_trainer, load_model, load_tokenizer

    values = load_yaml(ROOT / "recipes/tiny-train.yaml")["train"]
    out = tempfile.mkdtemp(prefix="bench-train-")
    values.update(output_dir=out, max_steps=args.warmup + args.steps, save_steps=0, resume=None, logging_steps=1)
    if args.model:
        values["model"] = args.model
    cfg = from_dict(TrainConfig, values)
    tok = load_tokenizer(cfg)
    rows, bad = load_rows(cfg)
    examples, report = build_examples(rows, tok, cfg, bad)
    model = load_model(cfg, tok, report["end_of_turn"])
    trainer = build_trainer(cfg, model, tok, examples)
    timer = StepTimer()
    trainer.add_callback(timer)
    trainer.train()
    counts = [h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h]
    tokens = [b - a for a, b in zip([0.0, *counts], counts)]
    times = [b - a for a, b in zip(timer.stamps, timer.stamps[1:])]
    c = model.config
    return {"config": cfg, "n_params": sum(p.numel() for p in model.parameters()), "layers": c.num_hidden_layers,
            "hidden": c.hidden_size, "seq_len": report["tokens"]["mean"], "tokens": tokens[args.warmup:],
            "times": times[args.warmup:], "losses": [h["loss"] for h in trainer.state.log_history if "loss" in h]}


def qwen32b_params() -> int:
    from transformers import AutoModelForCausalLM, Qwen2Config

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(Qwen2Config(**QWEN25_32B))
    return sum(p.numel() for p in model.parameters())


def estimate_32b(tokens_per_sample: int, mfus: list[float]) -> list[dict]:
    n = qwen32b_params()
    c = QWEN25_32B
    tokens = 1000 * tokens_per_sample * 5
    total = flops_per_token(n, c["num_hidden_layers"], c["hidden_size"], tokens_per_sample) * tokens
    rows = []
    for mfu in mfus:
        seconds = total / (16 * H100_BF16_DENSE * mfu)
        rows.append({"n_params": n, "tokens": tokens, "model_flops": total, "mfu_assumed": mfu,
                     "wall_minutes": seconds / 60, "gpu_hours": 16 * seconds / 3600})
    return rows


def measure(args, threads: int) -> dict:
    """One tiny-recipe run on ``threads`` torch threads, with the matmul peak measured around it."""
    torch.set_num_threads(threads)
    peak_before = matmul_peak()
    run = run_tiny(args)
    peak = max(peak_before, matmul_peak())
    fpt = flops_per_token(run["n_params"], run["layers"], run["hidden"], run["seq_len"])
    tok_s = sum(run["tokens"]) / sum(run["times"])
    return {"threads": threads, "model": run["config"].model, "n_params": run["n_params"],
            "micro_batch": run["config"].micro_batch, "mean_sample_tokens": run["seq_len"],
            "step_seconds": run["times"], "step_tokens": run["tokens"], "tokens_per_s": tok_s,
            "flops_per_token": fpt, "model_flops_per_s": fpt * tok_s, "matmul_peak_flops_per_s": peak,
            "mfu": fpt * tok_s / peak, "losses": run["losses"], "load_avg_after": os.getloadavg()}


def print_tables(rows: list[dict], est: list[dict], tokens_per_sample: int) -> None:
    print(f"\n## Tiny recipe on this CPU ({os.cpu_count()} cores, fp32; load average {os.getloadavg()[0]:.1f})\n")
    print(f"`{rows[0]['model']}`, {rows[0]['n_params'] / 1e6:.1f}M parameters, micro-batch {rows[0]['micro_batch']}, "
          f"mean sample {rows[0]['mean_sample_tokens']:.0f} tokens\n")
    print("| threads | tokens/step | s/step (median) | tokens/s | model GFLOP/s | matmul peak GFLOP/s | MFU | loss first -> last |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['threads']} | {statistics.median(r['step_tokens']):.0f} | {statistics.median(r['step_seconds']):.2f} | "
              f"{r['tokens_per_s']:.0f} | {r['model_flops_per_s'] / 1e9:.1f} | {r['matmul_peak_flops_per_s'] / 1e9:.1f} | "
              f"{r['mfu']:.1%} | {r['losses'][0]:.2f} -> {r['losses'][-1]:.2f} |")
    print("\n## Estimate: s1-32B recipe on 16 x H100 (arithmetic, not measured: no GPU in this task)\n")
    print(f"Qwen2.5-32B N = {est[0]['n_params'] / 1e9:.2f}B; s1K 1000 samples x {tokens_per_sample} tokens (assumed mean) "
          f"x 5 epochs = {est[0]['tokens'] / 1e6:.0f}M tokens; {est[0]['model_flops']:.2e} model FLOPs; "
          "H100 SXM bf16 dense peak 989 TFLOP/s\n")
    print("| MFU assumed | wall time (min) | GPU-hours |\n|---|---|---|")
    for row in est:
        print(f"| {row['mfu_assumed']:.0%} | {row['wall_minutes']:.0f} | {row['gpu_hours']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8, help="measured optimizer steps")
    parser.add_argument("--warmup", type=int, default=2, help="steps run before measuring")
    parser.add_argument("--model", default=None, help="override the recipe's tiny: model spec")
    parser.add_argument("--threads", default=f"1,{torch.get_num_threads()}", help="torch thread counts to run")
    parser.add_argument("--tokens-per-sample", type=int, default=8192, help="mean s1K sample length for the 32B estimate")
    parser.add_argument("--mfu", default="0.25,0.40", help="MFU assumptions for the 32B estimate")
    parser.add_argument("--output", default=str(ROOT / "bench/results/train.json"))
    args = parser.parse_args()

    threads = sorted({int(t) for t in args.threads.split(",")})
    rows = [measure(args, t) for t in threads]
    est = estimate_32b(args.tokens_per_sample, [float(x) for x in args.mfu.split(",")])
    print_tables(rows, est, args.tokens_per_sample)
    result = {"meta": {"python": platform.python_version(), "torch": torch.__version__, "cpu_count": os.cpu_count(),
                       "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "note": "shared machine: see load_avg_after"},
              "tiny": rows,
              "estimate_32b_16xH100": {"tokens_per_sample_assumed": args.tokens_per_sample,
                                       "h100_bf16_dense_peak": H100_BF16_DENSE, "rows": est}}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
