"""The demo: budget-forced generation on a tiny local model, no GPU, no network.

    s1kit demo --output-dir runs/demo

Builds a byte-level tokenizer (one token per character of ASCII text) and a tiny random Qwen2 whose weights make it try to end
thinking now and then, saves both as a Hugging Face model folder, and runs the real
``generate`` stage on it with a cap and two 'Wait' extensions. The text is gibberish (the model
is untrained); the point is the mechanics: caps, suppressed stops, accounting.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
QUESTIONS = ["How many r in raspberry?", "What is 17 * 23?", "Sort 5, 3, 9, 1.", "gcd(84, 36)?",
             "Write 13 in base 2.", "Solve 3x + 4 = 19.", "Add 7 + 8 + 9.", "Count the vowels in 'education'."]


@dataclass
class DemoConfig:
    output_dir: str = field(default="runs/demo", metadata={"help": "Where the model folder and outputs go."})
    max_thinking_tokens: int = field(default=160, metadata={"help": "Thinking cap for the demo."})
    num_ignore: int = field(default=2, metadata={"help": "Early stops to suppress with 'Wait'."})


def build_demo_model(folder: Path) -> Path:
    """Save a tiny stop-prone Qwen2 and a char tokenizer as a model folder (once)."""
    if (folder / "config.json").exists():
        return folder
    from s1kit.synth.models import add_early_stops, tiny_qwen2
    from s1kit.train.tiny import bytes_chat_tokenizer

    tok = bytes_chat_tokenizer()  # round-trips through save_pretrained/AutoTokenizer (a char vocab does not)
    model = tiny_qwen2(len(tok), hidden_size=64, num_layers=2, tie_embeddings=False, seed=0, max_positions=2048)
    im_start = tok.convert_tokens_to_ids("<|im_start|>")
    add_early_stops(model, im_start, rate=0.02, seed=0)
    model.lm_head.weight.data[tok.convert_tokens_to_ids("<|im_end|>")] = model.lm_head.weight.data[im_start] * 1.02
    model.generation_config.eos_token_id = [tok.convert_tokens_to_ids("<|im_end|>")]
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    from s1kit.forcing import BudgetPolicy
    from s1kit.generate import GenerateConfig, run_generate

    out = Path(cfg.output_dir)
    model_dir = build_demo_model(out / "model")
    gen = GenerateConfig(model=str(model_dir), prompt=tuple(QUESTIONS), output=str(out / "generations.jsonl"),
                         chat_template="chatml", batch_size=8)
    policy = BudgetPolicy(max_thinking_tokens=cfg.max_thinking_tokens, num_ignore=cfg.num_ignore, max_answer_tokens=40)
    manifest = run_generate(gen, policy)
    rows = [json.loads(line) for line in open(gen.output, encoding="utf-8")]
    return {"manifest": manifest, "rows": rows, "output": gen.output}


def summary_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of the per-sample accounting."""
    head = "| id | thinking tokens | forced tokens | answer tokens | waits | forced end | finish |\n|---|---|---|---|---|---|---|"
    lines = [f"| {r['id']} | {r['thinking_tokens']} | {r['forced_tokens']} | {r['answer_tokens']} | "
             f"{r['waits_injected']} | {r['forced_end']} | {r['finish_reason']} |" for r in rows if "thinking_tokens" in r]
    return "\n".join([head, *lines])
