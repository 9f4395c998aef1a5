"""The engine's preallocated KV cache (s1kit/backends/hf/kvcache.py) against transformers' DynamicCache."""

from __future__ import annotations

import pytest
import torch
from transformers.cache_utils import DynamicLayer

from s1kit.backends.hf.kvcache import GrowingLayer, from_rows, left_pad, merge_into, new_cache


def kv(batch, length, seed, heads=2, dim=4):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, heads, length, dim, generator=g), torch.randn(batch, heads, length, dim, generator=g)


def test_update_grows_past_capacity_and_matches_dynamic_layer():
    grow, ref = GrowingLayer(spare=3), DynamicLayer()
    for step, length in enumerate([5, 1, 1, 1, 1, 2, 1, 7, 1]):
        k, v = kv(2, length, seed=step)
        gk, gv = grow.update(k, v)
        rk, rv = ref.update(k, v)
        assert torch.equal(gk, rk) and torch.equal(gv, rv)
        assert grow.get_seq_length() == ref.get_seq_length()
        assert grow.capacity >= grow.get_seq_length()
    assert grow.capacity > 5 + 3  # it grew past its first allocation
    assert gk.data_ptr() == grow.kbuf.data_ptr()  # the live keys are a view of the buffer


def test_update_writes_in_place_while_the_spare_lasts():
    layer = GrowingLayer(spare=4)
    layer.update(*kv(3, 6, seed=0))
    buf = layer.kbuf
    for step in range(4):
        layer.update(*kv(3, 1, seed=step + 1))
        assert layer.kbuf is buf
    layer.update(*kv(3, 1, seed=9))
    assert layer.kbuf is not buf and layer.get_seq_length() == 11


def test_select_drop_leading_and_crop_keep_the_right_columns():
    layer, ref = GrowingLayer(spare=2), DynamicLayer()
    for step, length in enumerate([4, 1, 1, 1]):
        k, v = kv(4, length, seed=step)
        layer.update(k, v)
        ref.update(k, v)
    idx = torch.tensor([0, 2, 3])
    layer.batch_select_indices(idx)
    ref.batch_select_indices(idx)
    assert torch.equal(layer.keys, ref.keys) and torch.equal(layer.values, ref.values)
    layer.drop_leading(3)
    assert torch.equal(layer.keys, ref.keys[:, :, 3:]) and torch.equal(layer.values, ref.values[:, :, 3:])
    k, v = kv(3, 1, seed=7)  # decoding goes on after the rebuild
    out_k, _ = layer.update(k, v)
    assert torch.equal(out_k, torch.cat([ref.keys[:, :, 3:], k], dim=-2))
    layer.crop(-2)
    assert torch.equal(layer.keys, ref.keys[:, :, 3:6])


def test_merge_left_pads_with_zeros_and_keeps_growing():
    cfg = _config()
    old, new = new_cache(cfg), new_cache(cfg)
    a, b = kv(2, 5, seed=1), kv(3, 8, seed=2)
    for layer in old.layers:
        layer.update(*a)
    for layer in new.layers:
        layer.update(*b)
    mask = merge_into(old, torch.ones(2, 5, dtype=torch.long), new, torch.ones(3, 8, dtype=torch.long))
    assert mask.tolist()[:2] == [[0, 0, 0, 1, 1, 1, 1, 1]] * 2 and mask[2:].all()
    for layer in old.layers:
        assert isinstance(layer, GrowingLayer) and layer.keys.shape == (5, 2, 8, 4)
        assert torch.equal(layer.keys, torch.cat([left_pad(a[0], 8), b[0]]))
        assert torch.equal(layer.values, torch.cat([left_pad(a[1], 8), b[1]]))
        k, v = kv(5, 1, seed=3)
        assert torch.equal(layer.update(k, v)[0][:, :, -1:], k)


def test_from_rows_right_aligns_each_row():
    cfg = _config()
    rows = [[(k[0], v[0]) for _ in range(2)] for k, v in (kv(1, 3, seed=4), kv(1, 6, seed=5))]
    cache, mask = from_rows(cfg, rows, torch.device("cpu"))
    assert mask.tolist() == [[0, 0, 0, 1, 1, 1], [1] * 6]
    for li, layer in enumerate(cache.layers):
        assert torch.equal(layer.keys[0, :, 3:], rows[0][li][0]) and not layer.keys[0, :, :3].any()
        assert torch.equal(layer.values[1], rows[1][li][1])


def test_new_cache_refuses_sliding_window_layers():
    from transformers import Qwen2Config

    cfg = Qwen2Config(num_hidden_layers=2, hidden_size=16, num_attention_heads=2, num_key_value_heads=2,
                      intermediate_size=32, vocab_size=32, use_sliding_window=True, sliding_window=4,
                      max_window_layers=0)
    if all(t == "full_attention" for t in cfg.layer_types):
        pytest.skip("this transformers version gives the config no sliding layers")
    with pytest.raises(ValueError, match="full-attention"):
        new_cache(cfg)


def _config():
    from transformers import Qwen2Config

    return Qwen2Config(num_hidden_layers=2, hidden_size=8, num_attention_heads=2, num_key_value_heads=2,
                       intermediate_size=16, vocab_size=32)
