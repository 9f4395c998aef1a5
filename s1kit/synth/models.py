"""Tiny Qwen2-architecture models built from scratch (tests, benchmarks, the embedded default).

    model = tiny_qwen2(vocab_size=len(tokenizer), hidden_size=64, num_layers=2, seed=0)
    add_early_stops(model, stop_id=tokenizer.convert_tokens_to_ids("<|im_start|>"), rate=0.01)
"""

from __future__ import annotations

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM


def tiny_qwen2(vocab_size: int, hidden_size: int = 64, num_layers: int = 2, num_heads: int = 4,
               num_kv_heads: int = 2, intermediate_size: int | None = None, max_positions: int = 4096,
               seed: int = 0, init_std: float = 0.2, tie_embeddings: bool = True) -> Qwen2ForCausalLM:
    """A randomly initialised Qwen2 causal LM in fp32.

    ``init_std`` is larger than a trained model's (0.02) so that greedy decoding has clear
    winners: exact token-for-token comparisons between engines then do not hinge on fp32 ties.
    """
    config = Qwen2Config(
        vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
        intermediate_size=intermediate_size or 4 * hidden_size, max_position_embeddings=max_positions,
        initializer_range=init_std, tie_word_embeddings=tie_embeddings, use_sliding_window=False,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(torch.float32).eval()
    return model


def param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.inference_mode()
def add_early_stops(model: Qwen2ForCausalLM, stop_id: int, rate: float, seed: int = 0,
                    probe_tokens: int = 4096) -> float:
    """Make a random model emit ``stop_id`` on about ``rate`` of its greedy steps.

    Sets the output-embedding row of ``stop_id`` to a random direction scaled so that its logit
    beats every other token at the ``1 - rate`` quantile of probe hidden states. The stops are a
    property of the weights, so every engine sees the same model. Needs untied embeddings.
    Returns the scale used.
    """
    if model.config.tie_word_embeddings:
        raise ValueError("add_early_stops needs tie_embeddings=False")
    gen = torch.Generator().manual_seed(seed)
    probe = torch.randint(0, model.config.vocab_size, (8, probe_tokens // 8), generator=gen)
    hidden = model.model(input_ids=probe).last_hidden_state.reshape(-1, model.config.hidden_size)
    head = model.lm_head.weight
    head[stop_id] = 0.0
    best = (hidden @ head.T).max(-1).values
    direction = torch.randn(model.config.hidden_size, generator=gen)
    proj = hidden @ direction
    # the stop wins where scale * proj > best; choose the scale from the ratio's quantile
    ratio = torch.where(proj > 0, best / proj.clamp(min=1e-6), torch.full_like(best, float("inf")))
    scale = float(torch.quantile(ratio[torch.isfinite(ratio)], min(1.0, rate / max(1e-9, float((proj > 0).float().mean())))))
    head[stop_id] = direction * scale
    return scale
