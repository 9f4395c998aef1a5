"""Budget forcing inside vLLM: s1kit's logits-processor backend vs plain vLLM and vs s1's multi-round.

    .venv-vllm/bin/python bench/forcing.py --backend vllm --same-engine   # make bench-vllm
    .venv-vllm/bin/python bench/forcing_vllm.py                  # batch 8 and 32, 256 tokens
    .venv-vllm/bin/python bench/forcing_vllm.py --batch-sizes 8 --quick

Needs vLLM (bash scripts/vllm_env.sh). Model: bench/forcing.py's random-init Qwen2 (hidden 128,
4 layers, untied embeddings, ~40M parameters with the real 151,669-token Qwen vocabulary, the
output row of <|im_start|> set so the model tries to end thinking on ~1% of steps), fp32, saved
to a temporary folder and served by two vLLM engines (enforce_eager, prefix caching on):
  plain   vLLM with no custom logits processor: the baseline for plain generation and the engine
          of s1's multi-round algorithm (VLLMBackend(mode="multiround"));
  s1kit   VLLMBackend.from_pretrained(mode="processor"): the budget-forcing logits processor.
Workloads, all greedy, one request per prompt, submitted together (vLLM batches up to --batch):
  (a) no forcing: generation of up to N tokens; s1kit vs plain vLLM (the processor's overhead;
      target: <= 10% throughput cost); (a0) the same on one engine: forced requests vs requests
      without s1kit's extra_args, which the processor leaves alone; (a') with --full-mask: an
      engine whose processor masks whole rows to -inf (S1KIT_VLLM_FULL_MASK=1)
  (b) cap: N thinking tokens, then the forced end + answer (<= 32); s1kit vs multi-round
  (c) extension: budget 2N with 2x "Wait" on the model's early stops; s1kit vs multi-round
      (target: s1kit faster); with --same-engine also (b0), (c0): multi-round on the processor's engine
Each pair runs interleaved --repeats times (best of N counts: the machine is shared; the ratio of
the medians is in the JSON too) and must produce identical ids.
Each vLLM CPU engine pins its worker to cores of its own; on a shared machine two engines meet
different contention, so the same-engine rows (a0), (b0), (c0) are the controlled comparisons.
Results: a Markdown table on stdout and bench/results/forcing_vllm.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def build_model_dir(tok, folder: Path) -> int:
    """bench/forcing.py's model, saved with the tokenizer; returns its parameter count."""
    sys.path.insert(0, str(ROOT / "bench"))
    from forcing import build_model  # the same weights as the transformers benchmark

    model, params = build_model(tok)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return params


def load_prompts(tok, n: int) -> list[list[int]]:
    sys.path.insert(0, str(ROOT / "bench"))
    from forcing import load_prompts as load

    return load(tok, n)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def pair(name: str, batch: int, left, right, repeats: int) -> tuple[dict, list]:
    """Run two engines on the same work, interleaved; tokens = ids after the prompt."""
    a_times, b_times = [], []
    for _ in range(repeats):
        (a_res, a_ids), a_s = timed(left[1])
        (_, b_ids), b_s = timed(right[1])
        a_times.append(a_s)
        b_times.append(b_s)
    # best of N: the machine is shared, so the fastest run is the one least disturbed by others
    a_s, b_s = min(a_times), min(b_times)
    a_n, b_n = sum(map(len, a_ids)), sum(map(len, b_ids))
    row = {
        "workload": name, "batch": batch, "engine": left[0], "baseline": right[0], "tokens": a_n,
        "engine_s": round(a_s, 3), "baseline_s": round(b_s, 3),
        "engine_tok_s": round(a_n / a_s, 1), "baseline_tok_s": round(b_n / b_s, 1),
        "speedup": round((a_n / a_s) / (b_n / b_s), 3), "identical_tokens": a_ids == b_ids,
        "median_ratio": round((a_n / statistics.median(a_times)) / (b_n / statistics.median(b_times)), 3),
        "engine_runs_s": [round(t, 3) for t in a_times], "baseline_runs_s": [round(t, 3) for t in b_times],
    }
    return row, a_res


def bench_batch(ours, multi, plain_llm, tok, prompts, batch: int, new_tokens: int, repeats: int,
                workloads: str = "abc", full_mask=None, multi_same=None) -> list[dict]:
    from vllm import SamplingParams

    from s1kit.backends.base import Request
    from s1kit.forcing import BudgetPolicy

    eos = [tok.convert_tokens_to_ids("<|im_end|>"), tok.eos_token_id]
    rows = []
    warm = [Request(p, BudgetPolicy(max_thinking_tokens=8, num_ignore=1, max_answer_tokens=4), key="w")
            for p in prompts]
    ours.generate(warm)
    multi.generate(warm)

    plain = BudgetPolicy(max_thinking_tokens=None, max_answer_tokens=new_tokens)
    reqs = [Request(p, plain, key=str(i)) for i, p in enumerate(prompts)]

    def ours_run(reqs=reqs):
        res = ours.generate(reqs)
        return res, [r.ids for r in res]

    def plain_run(llm=plain_llm):  # ids only, as the backend asks of vLLM (it decodes the text itself, once)
        params = SamplingParams(temperature=0.0, max_tokens=new_tokens, stop_token_ids=eos, detokenize=False)
        outs = llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
        ids = [list(o.outputs[0].token_ids) for o in outs]
        return ids, ids

    if "a" in workloads:
        row, _ = pair("(a) no forcing", batch, ("s1kit vllm", ours_run), ("vllm generate", plain_run), repeats)
        row["overhead"] = round(1 - row["speedup"], 3)
        rows.append(row)
        # the same engine for both: requests without s1kit's extra_args leave the processor idle
        row, _ = pair("(a0) no forcing, same engine", batch, ("s1kit vllm", ours_run),
                      ("vllm generate, unforced", lambda: plain_run(ours.llm)), repeats)
        row["overhead"] = round(1 - row["speedup"], 3)
        rows.append(row)
        if full_mask is not None:
            def masked_run(reqs=reqs):
                res = full_mask.generate(reqs)
                return res, [r.ids for r in res]

            row, _ = pair("(a') no forcing, rows fully masked", batch, ("s1kit vllm, full -inf mask", masked_run),
                          ("vllm generate", plain_run), repeats)
            row["overhead"] = round(1 - row["speedup"], 3)
            rows.append(row)

    for name, policy in [
        ("(b) cap", BudgetPolicy(max_thinking_tokens=new_tokens, num_ignore=0, max_answer_tokens=32)),
        ("(c) 2x Wait", BudgetPolicy(max_thinking_tokens=2 * new_tokens, num_ignore=2, max_answer_tokens=32)),
    ]:
        if name[1] not in workloads:
            continue
        reqs = [Request(p, policy, key=str(i)) for i, p in enumerate(prompts)]

        def ours_forced(reqs=reqs):
            res = ours.generate(reqs)
            return res, [r.ids for r in res]

        def multi_forced(reqs=reqs):
            res = multi.generate(reqs)
            return res, [r.ids for r in res]

        row, res = pair(name, batch, ("s1kit vllm", ours_forced), ("s1 multi-round vllm", multi_forced), repeats)
        row["mean_waits"] = round(sum(r.waits_injected for r in res) / len(res), 2)
        row["share_capped"] = round(sum(r.forced_end for r in res) / len(res), 2)
        rows.append(row)
        if multi_same is not None:  # multi-round on the processor's engine (its requests leave the processor idle)
            def multi_same_forced(reqs=reqs):
                res = multi_same.generate(reqs)
                return res, [r.ids for r in res]

            row, _ = pair(name[:3] + "0" + name[3:] + ", same engine", batch, ("s1kit vllm", ours_forced),
                          ("s1 multi-round vllm, same engine", multi_same_forced), repeats)
            rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    head = ("| workload | batch | s1kit tok/s | baseline | baseline tok/s | throughput ratio (best of N) "
            "| ratio of medians | identical | waits | capped |\n|---|---|---|---|---|---|---|---|---|---|")
    lines = [f"| {r['workload']} | {r['batch']} | {r['engine_tok_s']} | {r['baseline']} | {r['baseline_tok_s']} | "
             f"{r['speedup']}x | {r.get('median_ratio', '-')}x | {r['identical_tokens']} | {r.get('mean_waits', '-')} | "
             f"{r.get('share_capped', '-')} |"
             for r in rows]
    return "\n".join([head, *lines])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="8,32")
    parser.add_argument("--quick", action="store_true", help="64 instead of 256 tokens (smoke run)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per pair (the best counts)")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--workloads", default="abc", help="which of (a), (b), (c) to run, e.g. 'a' or 'bc'")
    parser.add_argument("--full-mask", action="store_true",
                        help="also time (a) on a third engine that masks whole rows (S1KIT_VLLM_FULL_MASK=1)")
    parser.add_argument("--same-engine", action="store_true",
                        help="also time (b) and (c) against multi-round on the processor's own engine")
    parser.add_argument("--output", default=str(ROOT / "bench/results/forcing_vllm.json"))
    args = parser.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB per engine: plenty for a 40M model
    import torch
    import vllm
    from transformers import AutoTokenizer

    from s1kit.backends.vllm import VLLMBackend

    tok = AutoTokenizer.from_pretrained(str(SHARED / "tokenizers/qwen"))
    batches = [int(b) for b in args.batch_sizes.split(",")]
    new_tokens = 64 if args.quick else 256
    engine_args = dict(dtype="float32", enforce_eager=True, gpu_memory_utilization=0.3,
                       max_model_len=args.max_model_len, max_num_seqs=max(batches), enable_prefix_caching=True,
                       seed=0)
    with tempfile.TemporaryDirectory(prefix="s1kit-bench-vllm-") as folder:
        params = build_model_dir(tok, Path(folder))
        start = time.perf_counter()
        plain_llm = vllm.LLM(model=folder, **engine_args)
        plain_start = time.perf_counter() - start
        multi = VLLMBackend(plain_llm, mode="multiround", tokenizer=tok)
        start = time.perf_counter()
        ours = VLLMBackend.from_pretrained(folder, mode="processor", **engine_args)
        ours_start = time.perf_counter() - start
        full_mask = None
        if args.full_mask:
            os.environ["S1KIT_VLLM_FULL_MASK"] = "1"  # read by the processor in the new engine's worker
            full_mask = VLLMBackend.from_pretrained(folder, mode="processor", **engine_args)
            os.environ.pop("S1KIT_VLLM_FULL_MASK")
        rows = []
        for batch in batches:
            prompts = load_prompts(tok, batch)
            multi_same = VLLMBackend(ours.llm, mode="multiround", tokenizer=tok) if args.same_engine else None
            new = bench_batch(ours, multi, plain_llm, tok, prompts, batch, new_tokens, args.repeats, args.workloads,
                              full_mask, multi_same)
            rows += new
            print(markdown(new), flush=True)
    meta = {"params": params, "vllm": vllm.__version__, "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "quick": args.quick,
            "repeats": args.repeats, "new_tokens": new_tokens, "workloads": args.workloads,
            "engine_args": engine_args, "startup_s": {"plain": round(plain_start, 1), "s1kit": round(ours_start, 1)},
            "load_average": os.getloadavg()}
    print(f"\nmodel: {params / 1e6:.1f}M params, fp32, vLLM {vllm.__version__} on {meta['cpu']} "
          f"({meta['cores']} cores; load average at the end {meta['load_average'][0]:.1f})\n")
    print(markdown(rows))
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
