"""Learnability of the synthetic task families: what a tiny Qwen2 learns in minutes on a CPU.

    python bench/learnability.py --plan quick                # ~5 CPU-min: the recommended pipeline once
    python bench/learnability.py --plan pipeline --families add_chain count_letter mod_pow --base-worked 0.5
    python bench/learnability.py --plan study --workers 2    # families x layouts x sizes (~2 CPU-hours)
    python bench/learnability.py --plan custom --families add_chain --layouts add_chain:all --direct
    python bench/learnability.py --merge a.json b.json       # one table and results file from several runs

For each experiment a tiny Qwen2 (s1kit.synth.models.tiny_qwen2, char tokenizer with the ChatML
special tokens) is trained from scratch with a minimal torch loop (AdamW, warmup + cosine over
the budget, loss on the completion tokens only) for a fixed budget of *CPU time* of the process
(``--clock cpu``, default; ``--clock wall`` for wall time), then evaluated on held-out questions
with greedy decoding through s1kit's HFBackend (shared-prefix sweep, s1kit.eval.sweep). Modes:

- ``trace``: learns the teacher's s1-format traces (``<|im_start|>think`` ... ``<|im_start|>answer``
  ``Answer: X<|im_end|>``) from a large pool; evaluated at thinking caps of 0%, 25%, 50% and
  100% of the median teacher trace length of the eval set (the cap forces the end delimiter
  and ``Answer:``), at a large cap ('full') and at the large cap with one ``Wait`` extension;
- ``direct`` (the base-model analogue): learns ``Answer: X<|im_end|>`` right after the prompt
  and is evaluated without a thinking phase;
- ``pipeline`` (the embedded default in small): a *base* is pre-trained for
  ``--pretrain-minutes`` on a pool of questions, each rendered as a direct chat answer or, with
  probability ``--base-worked``, as a worked example outside the chat format
  (s1kit.synth.teacher.render_worked); the base is evaluated answering directly; then SFT
  starts from the base on ``--sft-rows`` teacher traces for ``--sft-epochs`` epochs (s1: 1,000 x 5)
  and is evaluated like a trace model.

Why CPU time: the study machine is shared (other jobs load its 2 cores), so wall time depends
on the neighbours; the CPU time a process gets is what it computed. A training process uses
``--threads`` torch threads (1 by default; a laptop with 2 idle cores can give each of 2 workers
one core, or one run 2 threads). Tokens seen and optimizer steps are
reported too, so runs compare across machines.

Writes bench/results/learnability.json (config, machine, every experiment's training record
and accuracies per cap and level) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import platform
import random
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
log = logging.getLogger("learnability")

CAP_FRACTIONS = (0.0, 0.25, 0.5, 1.0)
SIZES = {  # name -> (hidden, layers, heads, kv_heads)
    "h32l2": (32, 2, 4, 2),
    "h48l2": (48, 2, 4, 2),
    "h64l2": (64, 2, 4, 2),
    "h64l4": (64, 4, 4, 2),
    "h96l3": (96, 3, 6, 2),
    "h128l2": (128, 2, 4, 2),
    "h128l4": (128, 4, 4, 2),
}


@dataclass
class Experiment:
    name: str
    families: list[str]
    layouts: dict[str, str]  # family -> layout (trace mode)
    size: str
    minutes: float  # training budget on --clock, in minutes
    mode: str = "trace"  # trace | direct | pipeline (direct pre-training, then SFT on sft_rows traces)
    pool: int = 20000  # training problems per family (distinct questions, held-out ones excluded)
    pretrain_minutes: float = 0.0  # pipeline: direct-answer pre-training budget (the base model)
    sft_rows: int = 1000  # pipeline: teacher traces for SFT, split evenly over the families
    sft_epochs: float = 5.0  # pipeline: SFT stops after this many epochs (or at ``minutes``, first)
    sft_batch_size: int = 8  # pipeline: sequences per SFT step (5 epochs of 1,000 rows = 5000 / this steps)
    sft_lr: float = 1e-2  # pipeline: SFT peak learning rate
    base_worked: float = 0.0  # pipeline: share of the base corpus that is worked examples (render_worked)
    levels: tuple[int, ...] = (1, 2, 3, 4)
    lr: float = 1e-2  # 3e-3 learned add_chain far slower (docs/learnability.md)
    batch_size: int = 8  # small batches, many steps: what tiny models need to form their lookups
    seed: int = 0


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


def eval_problems(family: str, n: int, levels, seed: int = 1):
    from s1kit.synth.tasks import generate_unique

    return generate_unique(family, n, seed=seed, levels=levels)


def train_rows(exp: Experiment, exclude: dict[str, set[str]], args, per_family: int,
               seed: int = 100) -> list[dict[str, Any]]:
    from s1kit.synth.tasks import generate_unique
    from s1kit.synth.teacher import teacher_rows

    rows = []
    for fam in exp.families:
        problems = generate_unique(fam, per_family, seed=seed + exp.seed, levels=exp.levels, exclude=exclude[fam])
        rows += teacher_rows(problems, layout=exp.layouts.get(fam), mistake_rate=0.0,
                             correction_rate=args.correction_rate, check_rate=args.check_rate, seed=exp.seed)
    return rows


def encode(tok, rows, mode: str) -> list[tuple[list[int], int]]:
    """(ids, prompt_len) per row; loss goes on ids[prompt_len:] (thinking + answer, or answer)."""
    from s1kit.synth.teacher import render_direct, render_s1, render_worked

    render = {"trace": lambda r: render_s1(r["question"], r["thinking"], r["attempt"]),
              "worked": lambda r: render_worked(r["question"], r["thinking"], r["attempt"]),
              "direct": lambda r: render_direct(r["question"], r["attempt"])}[mode]
    return encode_pairs(tok, [render(r) for r in rows])


def encode_pairs(tok, pairs: list[tuple[str, str]]) -> list[tuple[list[int], int]]:
    enc = fast_encoder(tok)
    return [(enc(p) + enc(c), len(enc(p))) for p, c in pairs]


def fast_encoder(tok):
    """The char tokenizer's encode without the HF call overhead (about 30x faster; checked)."""
    import re

    vocab = tok.get_vocab()
    specials = sorted((t for t in vocab if t.startswith("<|")), key=len, reverse=True)
    pattern = re.compile("(" + "|".join(re.escape(t) for t in specials) + ")")
    unk = tok.unk_token_id

    def enc(text: str) -> list[int]:
        ids: list[int] = []
        for part in pattern.split(text):
            if part in vocab and part in specials:
                ids.append(vocab[part])
            else:
                ids.extend(vocab.get(ch, unk) for ch in part)
        return ids

    probe = "<|im_start|>user\nHow many r in raspberry?<|im_end|>\n<|im_start|>think\n7+8=15, 5 a0 x=3/1\n"
    if enc(probe) != tok.encode(probe, add_special_tokens=False):
        raise AssertionError("fast_encoder disagrees with the tokenizer")
    return enc


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


def build_model(tok, size: str, seed: int):
    from s1kit.synth.models import tiny_qwen2

    hidden, layers, heads, kv = SIZES[size]
    model = tiny_qwen2(len(tok), hidden_size=hidden, num_layers=layers, num_heads=heads, num_kv_heads=kv,
                       max_positions=1024, seed=seed, init_std=0.02)
    model.config.use_cache = False
    return model.train()


def batches(examples, batch_size: int, rng: random.Random):
    """Endless batches; a window of 16 batches is sorted by length so rows pad to similar lengths."""
    order: list[int] = []
    while True:
        if len(order) < batch_size * 16:
            fresh = list(range(len(examples)))
            rng.shuffle(fresh)
            order += fresh
        window, order = order[:batch_size * 16], order[batch_size * 16:]
        window.sort(key=lambda i: len(examples[i][0]))
        chunks = [window[k:k + batch_size] for k in range(0, len(window), batch_size)]
        rng.shuffle(chunks)
        yield from chunks


def train(model, examples, exp: Experiment, budget_s: float, clock: str, pad_id: int,
          max_steps: int | None = None) -> dict[str, Any]:
    """AdamW with warmup + cosine over the budget: ``budget_s`` of ``clock`` or ``max_steps``, first."""
    import torch

    now = time.process_time if clock == "cpu" else time.perf_counter
    opt = torch.optim.AdamW(model.parameters(), lr=exp.lr, betas=(0.9, 0.98), weight_decay=0.01)
    rng = random.Random(exp.seed)
    t0, w0 = now(), time.perf_counter()
    steps = tokens = loss_tokens = 0
    ema = None
    curve = []
    for idx in batches(examples, exp.batch_size, rng):
        frac = (now() - t0) / budget_s
        if max_steps:  # the schedule follows whichever budget runs out first
            frac = max(frac, steps / max_steps)
        if frac >= 1.0:
            break
        lr = exp.lr * (frac / 0.05 if frac < 0.05 else 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (frac - 0.05) / 0.95)))
        for g in opt.param_groups:
            g["lr"] = lr
        width = max(len(examples[i][0]) for i in idx)
        ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        labels = torch.full((len(idx), width), -100, dtype=torch.long)
        for row, i in enumerate(idx):
            seq, p = examples[i]
            ids[row, :len(seq)] = torch.tensor(seq)
            labels[row, p:len(seq)] = ids[row, p:len(seq)]
            tokens += len(seq)
            loss_tokens += len(seq) - p
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        steps += 1
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if steps % 50 == 0:
            curve.append((round(now() - t0, 1), steps, round(ema, 4)))
        if steps % 500 == 0:  # progress: workers run in parallel, so a log line rather than a bar
            log.info("%s: step %d, %.0f%% of the budget, loss %.3f", exp.name, steps, 100 * frac, ema)
    return {"steps": steps, "tokens": tokens, "loss_tokens": loss_tokens, "final_loss": round(ema or float("nan"), 4),
            "epochs": round(steps * exp.batch_size / len(examples), 2), "train_clock_s": round(now() - t0, 1),
            "train_wall_s": round(time.perf_counter() - w0, 1),
            "curve": curve}


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------


def evaluate(model, tok, problems, mode: str, answer_prefix: str, batch_size: int = 64,
             layout: str | None = None) -> dict[str, Any]:
    """Accuracy per thinking cap (trace) or without thinking (direct), overall and per level."""
    from s1kit.backends.hf import HFBackend
    from s1kit.eval.sweep import sweep
    from s1kit.forcing import BudgetPolicy
    from s1kit.synth.teacher import parse_answer, render_prompt, solve

    model.eval()
    backend = HFBackend(model, tok, batch_size=batch_size)
    prompts = [tok.encode(render_prompt(p.question), add_special_tokens=False) for p in problems]
    t0 = time.perf_counter()
    out: dict[str, Any] = {"n": len(problems)}

    def score(results) -> dict[str, Any]:
        ok = [parse_answer(r.answer_text) == p.answer for r, p in zip(results, problems)]
        levels = {}
        for lv in sorted({p.level for p in problems}):
            sel = [o for o, p in zip(ok, problems) if p.level == lv]
            levels[str(lv)] = round(sum(sel) / len(sel), 4)
        return {"acc": round(sum(ok) / len(ok), 4), "levels": levels,
                "thinking_tokens": round(statistics.mean(r.thinking_tokens for r in results), 1),
                "forced_end": round(sum(r.forced_end for r in results) / len(results), 3)}

    if mode == "direct":
        policy = BudgetPolicy(max_thinking_tokens=None, max_answer_tokens=24)
        from s1kit.backends.base import Request

        results = backend.generate([Request(ids, policy, key=str(i)) for i, ids in enumerate(prompts)])
        out["direct"] = score(results)
        out["examples"] = [{"q": p.question, "gold": p.answer, "out": r.answer_text} for p, r in
                           zip(problems[:3], results[:3])]
    else:
        # +2: the newline after the think delimiter and the one before the answer delimiter
        # caps are fractions of the length of the teacher's traces in the layout the model learned
        lengths = [len(tok.encode(solve(p, layout, check_rate=0.0).thinking, add_special_tokens=False)) + 2
                   for p in problems]
        typical = int(statistics.median(lengths))
        full = int(max(lengths) * 1.5) + 16
        caps = {f"{int(f * 100)}%": int(round(f * typical)) for f in CAP_FRACTIONS}
        caps["full"] = full
        policy = BudgetPolicy(forced_answer_prefix=answer_prefix, max_answer_tokens=24)
        points = sweep(backend, prompts, budgets=sorted(set(caps.values())), waits=[0, 1], policy=policy)
        out["typical_tokens"] = typical
        out["caps"] = caps
        for name, cap in caps.items():
            out[name] = score(points[next(pt for pt in points if pt.budget == cap and pt.waits == 0)])
        out["full+wait"] = score(points[next(pt for pt in points if pt.budget == full and pt.waits == 1)])
        longest = points[next(pt for pt in points if pt.budget == full and pt.waits == 0)]
        out["examples"] = [{"q": p.question, "gold": p.answer, "thinking": r.thinking_text[-300:],
                            "out": r.answer_text} for p, r in zip(problems[:3], longest[:3])]
    out["eval_wall_s"] = round(time.perf_counter() - t0, 1)
    model.train()
    return out


# --------------------------------------------------------------------------------------------


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(processName)s %(message)s", datefmt="%H:%M:%S")


def run_experiment(exp: Experiment, args) -> dict[str, Any]:
    import torch

    _setup_logging()  # again in spawned workers
    cpu0 = time.process_time()

    torch.set_num_threads(args.threads)
    from s1kit.synth.models import param_count
    from s1kit.synth.tokenizer import char_tokenizer

    tok = char_tokenizer()
    evals = {f: eval_problems(f, args.eval_n, exp.levels) for f in exp.families}
    exclude = {f: {p.question for p in ps} for f, ps in evals.items()}
    model = build_model(tok, exp.size, exp.seed)
    record: dict[str, Any] = {"experiment": asdict(exp), "params": param_count(model)}
    if exp.mode == "pipeline":  # the embedded default in small: a base, then SFT on teacher traces
        from s1kit.synth.teacher import base_corpus

        corpus = base_corpus(train_rows(exp, exclude, args, exp.pool), exp.base_worked, seed=exp.seed)
        base = encode_pairs(tok, [(prompt, completion) for prompt, completion, _ in corpus])
        record["base_rows"] = {kind: sum(k == kind for _, _, k in corpus) for kind in ("worked", "direct")}
        record["pretrain"] = train(model, base, exp, exp.pretrain_minutes * 60, args.clock, tok.pad_token_id)
        record["eval_base"] = {f: evaluate(model, tok, ps, "direct", args.answer_prefix) for f, ps in evals.items()}
        rows = train_rows(exp, exclude, args, max(1, exp.sft_rows // len(exp.families)), seed=200)
        mode = "trace"
    else:
        rows = train_rows(exp, exclude, args, exp.pool)
        mode = exp.mode
    if not rows:
        raise ValueError(f"{exp.name}: no training questions left after holding out the eval set")
    examples = encode(tok, rows, mode)
    record["train_rows"] = len(rows)
    record["mean_example_tokens"] = round(statistics.mean(len(e[0]) for e in examples), 1)
    max_steps = None
    if exp.mode == "pipeline":  # SFT has its own batch size and learning rate
        exp = dataclasses.replace(exp, batch_size=exp.sft_batch_size, lr=exp.sft_lr)
        max_steps = math.ceil(exp.sft_epochs * len(rows) / exp.batch_size)
    record["train"] = train(model, examples, exp, exp.minutes * 60, args.clock, tok.pad_token_id, max_steps)
    record["eval"] = {f: evaluate(model, tok, ps, mode, args.answer_prefix, layout=exp.layouts.get(f))
                      for f, ps in evals.items()}
    record["experiment_cpu_s"] = round(time.process_time() - cpu0, 1)  # data, training and evaluation
    return record


# The study: every family in its default layout and a direct-answer model (the base analogue),
# the layouts the defaults replaced (ablations), then the embedded pipeline in small with bases
# of 0%, 50% and 80% worked examples and one larger size.
STUDY_ABLATIONS = ["add_chain:running", "count_letter:tally", "mod_pow:steps", "base_conv:prepend",
                   "add_multi:columns"]
STUDY_WORKED = (0.0, 0.5, 0.8)
# The recommended embedded default (docs/learnability.md): families whose grid steps a 0.13M
# model learns in the base budget, and whose direct answers stay near chance.
PIPELINE_FAMILIES = ["add_chain", "count_letter"]
PIPELINE_WORKED = 0.8


def plan(name: str, args) -> list[Experiment]:
    from s1kit.synth.teacher import LAYOUTS

    m = args.minutes
    size = (args.sizes or ["h64l2"])[0]
    worked = args.base_worked if args.base_worked is not None else PIPELINE_WORKED

    def trace(f: str, lay: str, s: str = size) -> Experiment:
        return Experiment(f"{f}/{lay}/{s}", [f], {f: lay}, s, m)

    def direct(f: str, s: str = size) -> Experiment:
        return Experiment(f"{f}/direct/{s}", [f], {}, s, m, mode="direct")

    def pipeline(fams: list[str], w: float, s: str = size) -> Experiment:
        return Experiment(f"mix{len(fams)}/base{w:.0%}worked+sft{args.sft_rows}/{s}", fams,
                          {f: _layouts_for(f, args)[0] for f in fams}, s, m, mode="pipeline",
                          pretrain_minutes=args.pretrain_minutes, sft_rows=args.sft_rows,
                          sft_epochs=args.sft_epochs, base_worked=w, sft_batch_size=args.sft_batch_size,
                          sft_lr=args.sft_lr)

    if name == "quick":  # the recommended pipeline once: base vs SFT, accuracy per cap
        return [pipeline(args.families or PIPELINE_FAMILIES, worked)]
    if name == "pipeline":
        return [pipeline(args.families or PIPELINE_FAMILIES, worked, s) for s in args.sizes or ["h64l2"]]
    if name == "study":
        fams = args.families or list(LAYOUTS)
        exps = [trace(f, _layouts_for(f, args)[0]) for f in fams]
        exps += [direct(f) for f in fams]
        exps += [trace(*a.split(":")) for a in STUDY_ABLATIONS if a.split(":")[0] in fams]
        exps += [pipeline(PIPELINE_FAMILIES, w) for w in STUDY_WORKED]
        exps += [pipeline(PIPELINE_FAMILIES, PIPELINE_WORKED, "h96l3")]
        return exps
    if name == "custom":
        fams = args.families or ["add_chain"]
        sizes = args.sizes or ["h64l2"]
        exps = [trace(f, lay, s) for f in fams for lay in _layouts_for(f, args) for s in sizes]
        if args.direct:
            exps += [direct(f, s) for f in fams for s in sizes]
        return exps
    raise SystemExit(f"--plan {name!r}: allowed quick, pipeline, study, custom")


def _layouts_for(family: str, args) -> list[str]:
    from s1kit.synth.teacher import LAYOUTS

    chosen = [x.split(":", 1)[1] for x in args.layouts if x.split(":", 1)[0] == family]
    if chosen == ["all"]:
        return list(LAYOUTS[family])
    return chosen or [LAYOUTS[family][0]]


# --------------------------------------------------------------------------------------------


def table(records: list[dict[str, Any]]) -> str:
    direct = {}
    for r in records:
        if r["experiment"]["mode"] == "direct":
            for fam, ev in r["eval"].items():
                direct[(fam, r["experiment"]["size"])] = ev["direct"]["acc"]
    head = ("| family | layout | params | seed | lr | train CPU-min (wall) | tokens seen | steps | loss "
            "| typical think tok "
            "| acc@0% | acc@25% | acc@50% | acc@100% | acc@full | full+Wait | direct |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in records:
        e, t = r["experiment"], r["train"]
        for fam, ev in r["eval"].items():
            d = direct.get((fam, e["size"]))
            mins = f"{t['train_clock_s'] / 60:.1f} ({t['train_wall_s'] / 60:.1f})"
            if e["mode"] == "pipeline":  # the base is this run's own direct-answer pre-training
                d = r["eval_base"][fam]["direct"]["acc"]
                pre = r["pretrain"]
                mins = (f"{pre['train_clock_s'] / 60:.1f}+{t['train_clock_s'] / 60:.1f} "
                        f"({pre['train_wall_s'] / 60:.1f}+{t['train_wall_s'] / 60:.1f})")
            if e["mode"] == "direct":
                cells = ["–"] * 6 + [f"{ev['direct']['acc']:.2f}"]
                layout = "direct answer"
                typical = "–"
            else:
                cells = [f"{ev[k]['acc']:.2f}" for k in ("0%", "25%", "50%", "100%", "full", "full+wait")]
                cells.append(f"{d:.2f}" if d is not None else "–")
                layout = e["layouts"].get(fam, "")
                typical = str(ev["typical_tokens"])
            fam_name = fam if len(e["families"]) == 1 else f"{fam} (mix)"
            if e["mode"] == "pipeline":
                layout = (f"{layout}; base {e.get('base_worked', 0):.0%} worked, "
                          f"SFT {r['train_rows']}x{e.get('sft_epochs', 5):g}ep bs{e.get('sft_batch_size', 8)} "
                          f"lr {e.get('sft_lr', e['lr']):g}")
            lines.append(f"| {fam_name} | {layout} | {r['params'] / 1e6:.2f}M | {e['seed']} | {e['lr']:g} | {mins} "
                         f"| {t['tokens'] / 1e6:.2f}M "
                         f"| {t['steps']} | {t['final_loss']:.3f} | {typical} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def merge(paths: list[str], out: Path) -> None:
    """One results file from several runs (each run's meta is kept next to its records)."""
    records, runs = [], []
    for path in paths:
        data = json.loads(Path(path).read_text())
        runs.append({"file": Path(path).name, **data["meta"]})
        records += data["records"]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": {"merged": runs}, "records": records}, indent=1))
    print(table(records))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plan", default="quick", help="quick | pipeline | study | custom")
    ap.add_argument("--families", nargs="*", default=None)
    ap.add_argument("--layouts", nargs="*", default=[], help="family:layout (or family:all) pairs")
    ap.add_argument("--sizes", nargs="*", default=None, help="among " + ", ".join(SIZES))
    ap.add_argument("--minutes", type=float, default=3.0,
                    help="training budget per model in minutes of --clock (pipeline: the cap on SFT)")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the plan's)")
    ap.add_argument("--batch-size", type=int, default=None, help="sequences per step (default: the plan's)")
    ap.add_argument("--pool", type=int, default=None, help="training problems per family (default: the plan's)")
    ap.add_argument("--seed", type=int, default=0, help="model init, data order and training questions")
    ap.add_argument("--tag", default="", help="suffix for experiment names (ablations)")
    ap.add_argument("--direct", action="store_true", help="custom plan: also train direct-answer models")
    ap.add_argument("--pretrain-minutes", type=float, default=3.0,
                    help="pipeline: base pre-training budget (minutes of --clock)")
    ap.add_argument("--sft-rows", type=int, default=1000, help="pipeline plan: teacher traces for SFT")
    ap.add_argument("--base-worked", type=float, default=None,
                    help=f"pipeline: share of worked examples in the base corpus (default {PIPELINE_WORKED}; "
                         "0 = direct answers only)")
    ap.add_argument("--sft-batch-size", type=int, default=8, help="pipeline plan: sequences per SFT step")
    ap.add_argument("--sft-lr", type=float, default=1e-2, help="pipeline plan: SFT peak learning rate")
    ap.add_argument("--sft-epochs", type=float, default=5.0, help="pipeline plan: SFT epochs (--minutes caps it)")
    ap.add_argument("--eval-n", type=int, default=None, help="held-out questions per family (default 100; quick 50)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    ap.add_argument("--workers", type=int, default=1, help="experiments run in parallel processes")
    ap.add_argument("--check-rate", type=float, default=0.5)
    ap.add_argument("--correction-rate", type=float, default=0.0)
    ap.add_argument("--answer-prefix", default="Answer:", help="forced after the cap (s1 uses 'Final Answer:')")
    ap.add_argument("--out", default=str(ROOT / "bench/results/learnability.json"))
    ap.add_argument("--append", action="store_true", help="add to the records already in --out")
    ap.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                    help="train nothing: merge the records of earlier runs' JSON files into --out and print the table")
    args = ap.parse_args(argv)
    _setup_logging()
    if args.eval_n is None:
        args.eval_n = 50 if args.plan == "quick" else 100
    if args.base_worked is not None and not 0.0 <= args.base_worked <= 1.0:
        raise SystemExit(f"--base-worked {args.base_worked}: allowed a number in [0, 1]")
    if args.merge:
        merge(args.merge, Path(args.out))
        return
    for s in args.sizes or []:
        if s not in SIZES:
            raise SystemExit(f"--sizes {s!r}: allowed " + ", ".join(SIZES))
    exps = plan(args.plan, args)
    for exp in exps:
        exp.name += args.tag
        exp.lr = args.lr if args.lr is not None else exp.lr
        exp.batch_size = args.batch_size if args.batch_size is not None else exp.batch_size
        exp.pool = args.pool if args.pool is not None else exp.pool
        exp.seed = args.seed
        if args.seed:
            exp.name += f"/seed{args.seed}"
    out = Path(args.out)
    records: list[dict[str, Any]] = []
    if args.append and out.exists():
        records = json.loads(out.read_text())["records"]
    meta = {"argv": sys.argv[1:], "python": platform.python_version(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "loadavg_start": os.getloadavg()}
    t0 = time.perf_counter()
    print(f"{len(exps)} experiments, {args.minutes} {args.clock}-min each, {args.workers} worker(s)", flush=True)

    def save():
        meta["loadavg_end"] = os.getloadavg()
        meta["total_wall_s"] = round(time.perf_counter() - t0, 1)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"meta": meta, "records": records}, indent=1))

    def report(rec):
        records.append(rec)
        save()
        ev = rec["eval"]
        summary = {f: (e.get("direct") or e.get("full"))["acc"] for f, e in ev.items()}
        print(f"[{time.perf_counter() - t0:6.0f}s] {rec['experiment']['name']}: {rec['train']['steps']} steps, "
              f"loss {rec['train']['final_loss']}, acc {summary}, {rec.get('experiment_cpu_s')} CPU-s in all",
              flush=True)

    failed = []

    def fail(exp, err):  # one broken experiment must not take the others down
        failed.append({"name": exp.name, "error": f"{type(err).__name__}: {err}"})
        meta["failed"] = failed
        save()
        print(f"[{time.perf_counter() - t0:6.0f}s] {exp.name}: FAILED {err}", flush=True)

    if args.workers <= 1:
        for exp in exps:
            try:
                rec = run_experiment(exp, args)
            except Exception as err:  # noqa: BLE001 - reported and recorded
                fail(exp, err)
                continue
            report(rec)
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as pool:
            futs = {pool.submit(run_experiment, exp, args): exp for exp in exps}
            for fut in as_completed(futs):
                try:
                    rec = fut.result()
                except Exception as err:  # noqa: BLE001
                    fail(futs[fut], err)
                    continue
                report(rec)
    order = {e.name: i for i, e in enumerate(exps)}
    records.sort(key=lambda r: order.get(r["experiment"]["name"], -1))
    save()
    print()
    print(table(records))


if __name__ == "__main__":
    main()
