"""A whole `s1kit eval` run in its own process, for the kill -9 resume test (not a test module).

    python tests/eval/eval_child.py OUTPUT_DIR

Tiny random Qwen2 (the ``stopping_model`` of tests/conftest.py), the real Qwen tokenizer,
synthetic tasks, a budget sweep plus both baselines, small batches so rows land on disk in
several chunks. Everything is seeded, so two runs give the same rows.
"""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def main(out_dir: str) -> None:
    import torch

    torch.set_num_threads(1)
    from transformers import AutoTokenizer

    from s1kit.backends.hf import HFBackend
    from s1kit.eval.run import EvalConfig, run_eval
    from s1kit.forcing import BudgetPolicy
    from s1kit.synth.models import add_early_stops, tiny_qwen2

    tok = AutoTokenizer.from_pretrained(str(TESTS.parent.parent / "shared" / "tokenizers" / "qwen"))
    model = tiny_qwen2(len(tok), hidden_size=64, num_layers=2, tie_embeddings=False, seed=1)
    im_start, im_end = tok.convert_tokens_to_ids("<|im_start|>"), tok.convert_tokens_to_ids("<|im_end|>")
    add_early_stops(model, im_start, rate=0.03, seed=1, probe_tokens=1024)
    with torch.no_grad():
        model.lm_head.weight[im_end] = model.lm_head.weight[im_start] * 1.02
    cfg = EvalConfig(model="tiny", benchmarks=("synth:add_chain+gcd",), synth_n=3, budgets=("8", "24"),
                     waits=("0", "1"), majority_n=2, majority_budget=16, rejection_budgets=("16",),
                     rejection_max_attempts=2, batch_size=2, output_dir=out_dir, chat_template="chatml",
                     progress=False)
    # top_k keeps sampling cheap (a multinomial over 151k tokens dominates otherwise)
    run_eval(cfg, BudgetPolicy(max_answer_tokens=6, seed=3, top_k=20), backend=HFBackend(model, tok, batch_size=2))


if __name__ == "__main__":
    main(sys.argv[1])
