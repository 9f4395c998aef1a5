"""Budget-forcing throughput: s1kit's single-pass engine vs HF generate and the s1 reference.

    python bench/forcing.py                      # full run (batch 1, 8, 32), ~5 minutes on 2 cores
    python bench/forcing.py --batch-sizes 8 --quick

Model: a random-init Qwen2 (hidden 128, 4 layers, untied embeddings, about 40M parameters with
the real 151,669-token Qwen vocabulary from ../shared/tokenizers/qwen), fixed seed, fp32 on CPU,
whose output row for <|im_start|> is set so the model tries to end thinking on about 1% of steps.
Workloads, all greedy:
  (a) no forcing: plain generation of up to 256 new tokens; engine vs HF `model.generate`
  (b) cap: 256 thinking tokens, then the forced end + answer (<= 32 tokens); engine vs reference
  (c) extension: budget 512 with 2x "Wait" on the model's early stops; engine vs reference
Every pair runs side by side in this process and must produce identical tokens; the table gives
tokens per second and the engine's speed-up ratio. Results go to bench/results/forcing.json.

    python bench/forcing.py --backend vllm --same-engine   # in .venv-vllm: `make bench-vllm`

`--backend vllm` runs the same workloads on vLLM: the logits-processor backend against plain vLLM
generation (the cost of forcing inside vLLM) and against s1's multi-round algorithm on vLLM; the
other flags are bench/forcing_vllm.py's (`--help` after `--backend vllm` lists them). It needs
vLLM's own environment (`make bench-vllm` builds it and runs this); results go to
bench/results/forcing_vllm.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def problems(n: int) -> list[str]:
    """MATH500 problems (varied lengths, cut at 600 characters), or synthetic ones without ../shared."""
    path = SHARED / "data/benchmarks/math500.jsonl"
    if path.exists():
        return [json.loads(line)["problem"][:600] for line in open(path, encoding="utf-8")][:n]
    return [f"Compute {i} * {i + 7} and explain. " * (1 + i % 4) for i in range(n)]


def load_prompts(tok, n: int) -> list[list[int]]:
    """ChatML prompts of :func:`problems`."""
    from s1kit.formats import chatml

    return [tok.encode(chatml(p), add_special_tokens=False) for p in problems(n)]


def build_model(tok):
    from s1kit.synth.models import add_early_stops, param_count, tiny_qwen2

    model = tiny_qwen2(len(tok), hidden_size=128, num_layers=4, num_heads=4, num_kv_heads=2,
                       intermediate_size=512, tie_embeddings=False, seed=0, init_std=0.2)
    add_early_stops(model, tok.convert_tokens_to_ids("<|im_start|>"), rate=0.01, seed=0)
    return model, param_count(model)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def hf_generate(model, tok, prompts, max_new, eos):
    """HF `model.generate`, left-padded batch, greedy; returns per-row generated ids."""
    from s1kit.backends.hf import left_pad_batch

    ids, mask = left_pad_batch(prompts, tok.pad_token_id)
    width = ids.shape[1]
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new, do_sample=False,
                             eos_token_id=eos, pad_token_id=tok.pad_token_id, top_p=None, top_k=None,
                             temperature=None)
    rows = []
    for row in out[:, width:].tolist():
        cut = next((j + 1 for j, t in enumerate(row) if t in eos), len(row))
        rows.append(row[:cut])
    return rows


def run_pair(name, batch, left, right, repeats=1):
    """Run two engines on the same work, interleaved ``repeats`` times, and keep each engine's
    best time (the run least disturbed by other load); tokens = every id after the prompt."""
    a_s = b_s = float("inf")
    for _ in range(repeats):
        (_, a_ids), a_t = timed(left[1])
        (_, b_ids), b_t = timed(right[1])
        a_s, b_s = min(a_s, a_t), min(b_s, b_t)
    a_n, b_n = sum(map(len, a_ids)), sum(map(len, b_ids))
    return {
        "workload": name, "batch": batch, "engine": left[0], "baseline": right[0],
        "tokens": a_n, "engine_s": round(a_s, 3), "baseline_s": round(b_s, 3),
        "engine_tok_s": round(a_n / a_s, 1), "baseline_tok_s": round(b_n / b_s, 1),
        "speedup": round(b_s / a_s, 2), "identical_tokens": a_ids == b_ids,
    }


def bench_batch(model, tok, prompts, batch, quick, repeats):
    from s1kit.backends.base import Request
    from s1kit.backends.hf import HFBackend
    from s1kit.backends.reference import S1ReferenceBackend
    from s1kit.forcing import BudgetPolicy

    engine = HFBackend(model, tok, batch_size=batch)
    ref = S1ReferenceBackend(model, tok, batch_size=batch)
    eos = [tok.convert_tokens_to_ids("<|im_end|>"), tok.eos_token_id]
    new_tokens = 64 if quick else 256
    rows = []

    plain = BudgetPolicy(max_thinking_tokens=None, max_answer_tokens=new_tokens)
    reqs = [Request(p, plain, key=str(i)) for i, p in enumerate(prompts)]

    def ours_plain():
        res = engine.generate(reqs)
        return res, [r.ids for r in res]

    def hf_plain():
        out = []
        for s in range(0, len(prompts), batch):
            out += hf_generate(model, tok, prompts[s:s + batch], new_tokens, eos)
        return out, out

    warm = [Request(p, BudgetPolicy(max_thinking_tokens=8, num_ignore=1, max_answer_tokens=4), key="w")
            for p in prompts[:batch]]
    engine.generate(warm)  # warm-up: first calls pay one-time allocation and dispatch costs
    hf_generate(model, tok, prompts[:batch], 8, eos)
    rows.append(run_pair("(a) no forcing", batch, ("s1kit", ours_plain), ("hf generate", hf_plain), repeats))

    for name, policy in [
        ("(b) cap", BudgetPolicy(max_thinking_tokens=new_tokens, num_ignore=0, max_answer_tokens=32)),
        ("(c) 2x Wait", BudgetPolicy(max_thinking_tokens=2 * new_tokens, num_ignore=2, max_answer_tokens=32)),
    ]:
        reqs = [Request(p, policy, key=str(i)) for i, p in enumerate(prompts)]

        def ours(reqs=reqs):
            res = engine.generate(reqs)
            return res, [r.ids for r in res]

        def reference(reqs=reqs):
            res = ref.generate(sorted(reqs, key=lambda r: len(r.prompt_ids)))
            by_key = {r.key: x for r, x in zip(sorted(reqs, key=lambda r: len(r.prompt_ids)), res)}
            res = [by_key[r.key] for r in reqs]
            return res, [r.ids for r in res]

        row = run_pair(name, batch, ("s1kit", ours), ("s1 reference", reference), repeats)
        res, _ = ours()
        row["mean_waits"] = round(sum(r.waits_injected for r in res) / len(res), 2)
        row["share_capped"] = round(sum(r.forced_end for r in res) / len(res), 2)
        rows.append(row)
    return rows


def run_on_vllm(argv: list[str]) -> None:
    """`--backend vllm`: bench/forcing_vllm.py's workloads on a vLLM engine, with its flags."""
    try:
        import vllm  # noqa: F401
    except Exception as err:  # noqa: BLE001 - a broken install (missing CUDA libs...) is the same answer
        raise SystemExit(f"--backend vllm needs vLLM, which is not importable here ({type(err).__name__}: {err}); "
                         "build its environment and run the benchmark there: make bench-vllm") from err
    sys.path.insert(0, str(ROOT / "bench"))
    import forcing_vllm

    sys.argv = [str(ROOT / "bench/forcing_vllm.py"), *argv]
    forcing_vllm.main()


def markdown(rows: list[dict]) -> str:
    head = ("| workload | batch | engine tok/s | baseline | baseline tok/s | speed-up | identical | waits | capped |\n"
            "|---|---|---|---|---|---|---|---|---|")
    lines = [f"| {r['workload']} | {r['batch']} | {r['engine_tok_s']} | {r['baseline']} | {r['baseline_tok_s']} | "
             f"{r['speedup']}x | {r['identical_tokens']} | {r.get('mean_waits', '-')} | {r.get('share_capped', '-')} |"
             for r in rows]
    return "\n".join([head, *lines])


def main() -> None:
    backend = argparse.ArgumentParser(add_help=False)
    backend.add_argument("--backend", choices=("hf", "vllm"), default="hf",
                         help="vllm: the same workloads on vLLM (bench/forcing_vllm.py, its flags; needs vLLM)")
    picked, rest = backend.parse_known_args()
    if picked.backend == "vllm":
        run_on_vllm(rest)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[backend])
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--quick", action="store_true", help="64 instead of 256 tokens (smoke run)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per pair; best time kept")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--output", default=str(ROOT / "bench/results/forcing.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(SHARED / "tokenizers/qwen"))
    model, params = build_model(tok)
    rows = []
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        prompts = load_prompts(tok, max(batch, 4))
        rows += bench_batch(model, tok, prompts, batch, args.quick, args.repeats)
        print(markdown(rows[-3:]), flush=True)
    meta = {"params": params, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "quick": args.quick, "repeats": args.repeats}
    print(f"\nmodel: {params / 1e6:.1f}M params, fp32, {meta['threads']} threads\n")
    print(markdown(rows))
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
