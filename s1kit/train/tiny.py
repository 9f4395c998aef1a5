"""Tiny things built in code for CPU training: a random Qwen2 ('tiny:' models), a byte-level
tokenizer with a ChatML chat template, and a programmatic arithmetic set with step-by-step traces ('synth:').

    s1kit train --config recipes/tiny-train.yaml           # model: tiny:hidden=512,...  dataset: synth:arith,n=512
    _, spec = parse_spec("tiny:hidden=64,layers=2", TINY_KEYS, "model")
    model = build_tiny_model(spec, vocab_size=len(bytes_chat_tokenizer()))
"""

from __future__ import annotations

import random
from typing import Any

from s1kit.config import ConfigError

TINY_KEYS = {"hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2, "ffn": 0, "max_positions": 4096, "seed": 0,
             "init_std": 0.02}
SYNTH_KEYS = {"n": 256, "seed": 0, "digits": 4}
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML_TEMPLATE = (
    "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")


def parse_spec(text: str, defaults: dict[str, Any], field: str) -> tuple[str, dict[str, Any]]:
    """'tiny:hidden=64,layers=2' -> ('tiny', {...defaults, hidden: 64, layers: 2}); 'synth:arith,n=8' -> ('synth:arith', ...)."""
    scheme, _, rest = text.partition(":")
    values = dict(defaults)
    head = scheme
    for i, part in enumerate(p for p in rest.split(",") if p):
        key, eq, val = part.partition("=")
        if not eq:
            if i == 0:
                head = f"{scheme}:{key}"
                continue
            raise ConfigError(field, text, "KEY=VALUE pairs separated by commas")
        if key not in defaults:
            raise ConfigError(field, text, "keys among " + ", ".join(defaults))
        try:
            values[key] = type(defaults[key])(val)
        except ValueError:
            raise ConfigError(field, text, f"{key}= a {type(defaults[key]).__name__}") from None
    return head, values


def bytes_chat_tokenizer():
    """A byte-level tokenizer without merges (one token per UTF-8 byte) plus the ChatML special tokens.

    It is a ``Qwen2Tokenizer``: transformers 5 always loads a qwen2 model folder's tokenizer as
    Qwen2Tokenizer, which rebuilds ByteLevel pre-tokenization, so s1kit.synth's char tokenizer
    would lose its spaces and newlines on reload; this one round-trips exactly.
    """
    from tokenizers import pre_tokenizers
    from transformers import Qwen2Tokenizer

    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS + sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tok = Qwen2Tokenizer(vocab=vocab, merges=[], eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None,
                         extra_special_tokens=["<|im_start|>"])
    tok.chat_template = CHATML_TEMPLATE
    return tok


def build_tiny_model(spec: dict[str, Any], vocab_size: int):
    """A random fp32 Qwen2 of the given shape, in train mode (tied embeddings, as small Qwen2.5 models)."""
    from s1kit.synth.models import tiny_qwen2

    return tiny_qwen2(vocab_size, hidden_size=spec["hidden"], num_layers=spec["layers"], num_heads=spec["heads"],
                      num_kv_heads=spec["kv_heads"], intermediate_size=spec["ffn"] or None,
                      max_positions=spec["max_positions"], seed=spec["seed"], init_std=spec["init_std"]).train()


def synth_rows(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Addition questions with a digit-by-digit trace (thinking) and a boxed attempt, s1K-shaped."""
    rng = random.Random(spec["seed"])
    rows = []
    for i in range(spec["n"]):
        a, b = (rng.randrange(10 ** (spec["digits"] - 1), 10 ** spec["digits"]) for _ in range(2))
        rows.append({"id": f"arith-{spec['seed']}-{i}", "question": f"What is {a} + {b}?",
                     "thinking": _addition_trace(a, b), "attempt": f"{a} + {b} = \\boxed{{{a + b}}}"})
    return rows


def _addition_trace(a: int, b: int) -> str:
    lines = [f"I add {a} and {b} column by column, starting from the ones."]
    carry, place = 0, 1
    names = ["ones", "tens", "hundreds", "thousands", "ten-thousands", "hundred-thousands"]
    for k in range(max(len(str(a)), len(str(b)))):
        da, db = a // place % 10, b // place % 10
        total = da + db + carry
        lines.append(f"The {names[min(k, len(names) - 1)]}: {da} + {db} + carry {carry} = {total}, "
                     f"write {total % 10}, carry {total // 10}.")
        carry, place = total // 10, place * 10
    if carry:
        lines.append(f"The final carry {carry} leads the number.")
    lines.append(f"So {a} + {b} = {a + b}. Check: {a + b} - {b} = {a}. Correct.")
    return "\n".join(lines)
