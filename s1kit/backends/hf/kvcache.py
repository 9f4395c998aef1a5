"""The engine's own KV cache: preallocated per-layer buffers that grow in chunks (:class:`GrowingLayer`).

transformers' ``DynamicLayer`` concatenates every new column onto the whole cache (an O(T) copy
per layer per step, O(T^2) per generation). A :class:`GrowingLayer` keeps its keys and values in
buffers ``[batch, kv_heads, capacity, head_dim]`` with spare columns: ``update`` writes the new
columns in place and ``keys`` / ``values`` are views of the live length, so the model sees the
same tensors, column for column, as with ``DynamicLayer``. Only when the spare runs out is the
buffer copied into a larger one (``spare`` more columns).

The running batch changes shape outside the model's forward (rows leave, rows join left-padded,
leading columns no row uses are dropped): :meth:`GrowingLayer.place` rebuilds a layer from
right-aligned parts, zero-padded on the left (padding is masked, and zeros keep a masked slot
from turning softmax's zero weight into NaN).

    cache = new_cache(model.config)       # a transformers DynamicCache of GrowingLayers
    model(..., past_key_values=cache)     # prefill / decode as usual
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

SPARE = 256  # columns a buffer holds beyond its live length when it is (re)allocated


class GrowingLayer(DynamicLayer):
    """A full-attention cache layer over preallocated buffers; ``keys``/``values`` view the live columns."""

    def __init__(self, spare: int = SPARE, **kwargs: Any):
        super().__init__(**kwargs)
        self.spare = spare
        self.kbuf: torch.Tensor | None = None  # [batch, kv_heads, capacity, head_dim]
        self.vbuf: torch.Tensor | None = None

    @property
    def capacity(self) -> int:
        return 0 if self.kbuf is None else self.kbuf.shape[-2]

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self.kbuf = self.vbuf = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new columns after the live ones (growing the buffers if needed); the live views."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n, add = self.get_seq_length(), key_states.shape[-2]
        if self.kbuf is None or n + add > self.capacity or self.kbuf.shape[0] != key_states.shape[0]:
            old_k, old_v = self.keys, self.values  # views of the old buffers (None before the first write)
            self._allocate(key_states.shape[0], n + add, key_states, value_states)
            if n:
                self.kbuf[:, :, :n].copy_(old_k)
                self.vbuf[:, :, :n].copy_(old_v)
        self.kbuf[:, :, n:n + add].copy_(key_states)
        self.vbuf[:, :, n:n + add].copy_(value_states)
        self._view(n + add)
        return self.keys, self.values

    def _allocate(self, batch: int, width: int, like_k: torch.Tensor, like_v: torch.Tensor) -> None:
        """Fresh zeroed buffers for ``batch`` rows and ``width`` live columns plus the spare."""
        kshape = (batch, like_k.shape[1], width + self.spare, like_k.shape[-1])
        vshape = (batch, like_v.shape[1], width + self.spare, like_v.shape[-1])
        self.kbuf = torch.zeros(kshape, dtype=like_k.dtype, device=like_k.device)
        self.vbuf = torch.zeros(vshape, dtype=like_v.dtype, device=like_v.device)
        self.device = like_k.device
        self.is_initialized = True

    def _view(self, width: int) -> None:
        self.keys, self.values = self.kbuf[:, :, :width], self.vbuf[:, :, :width]

    def place(self, parts: Sequence[tuple[torch.Tensor, torch.Tensor]], width: int) -> None:
        """Rebuild from ``parts`` ([rows, kv_heads, length, head_dim] pairs, stacked along the batch),
        each right-aligned in ``width`` live columns (left-padded with zeros)."""
        k0, v0 = parts[0]
        self._allocate(sum(k.shape[0] for k, _ in parts), width, k0, v0)
        row = 0
        for k, v in parts:
            b, t = k.shape[0], k.shape[-2]
            self.kbuf[row:row + b, :, width - t:width].copy_(k)
            self.vbuf[row:row + b, :, width - t:width].copy_(v)
            row += b
        self._view(width)

    def drop_leading(self, first: int) -> None:
        """Drop the first ``first`` live columns (no row attends to them any more)."""
        self.place([(self.keys[:, :, first:], self.values[:, :, first:])], self.get_seq_length() - first)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep the rows ``indices`` (their live columns move into fresh buffers)."""
        if self.get_seq_length() > 0:
            self.place([(self.keys[indices], self.values[indices])], self.get_seq_length())

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.get_seq_length() > 0:
            self.place([(self.keys.repeat_interleave(repeats, dim=0),
                         self.values.repeat_interleave(repeats, dim=0))], self.get_seq_length())

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.batch_select_indices(beam_idx.to(self.device))

    def crop(self, tokens_to_remove: int) -> None:
        super().crop(tokens_to_remove)  # checks the argument; the live views get shorter
        if self.kbuf is not None and tokens_to_remove:
            self._view(self.keys.shape[-2])

    def reset(self) -> None:
        self.kbuf = self.vbuf = None
        super().reset()


def new_cache(config: Any, spare: int = SPARE) -> DynamicCache:
    """A ``DynamicCache`` for ``config`` whose full-attention layers are :class:`GrowingLayer`\\ s
    (the engine needs every layer to keep every column: other layer types are refused)."""
    cache = DynamicCache(config=config)
    for layer in cache.layers:
        if type(layer) is not DynamicLayer:
            raise ValueError(f"the engine's KV cache needs full-attention layers, not {type(layer).__name__}")
    cache.layers = [GrowingLayer(spare) for _ in cache.layers]
    return cache


def merge_into(cache: DynamicCache, mask: torch.Tensor, new_cache: DynamicCache, new_mask: torch.Tensor) -> torch.Tensor:
    """Append the rows of ``new_cache`` to ``cache`` (in place), left-padding the shorter side; the merged mask.

    Padding slots are masked out, and position ids are explicit, so a row's outputs do not
    depend on how many columns sit to its left.
    """
    width = max(mask.shape[1], new_mask.shape[1])
    for layer, new in zip(cache.layers, new_cache.layers):
        layer.place([(layer.keys, layer.values), (new.keys, new.values)], width)
    return torch.cat([left_pad(mask, width), left_pad(new_mask, width)])


def from_rows(config: Any, rows: Sequence[Sequence[tuple[torch.Tensor, torch.Tensor]]],
              device: torch.device) -> tuple[DynamicCache, torch.Tensor]:
    """A cache (and its [rows, width] mask) from per-row caches: ``rows[i][layer]`` is a (keys,
    values) pair [kv_heads, length, head_dim]; each row right-aligned, left-padded."""
    width = max(kv[0][0].shape[-2] for kv in rows)
    cache = new_cache(config)
    for li, layer in enumerate(cache.layers):
        layer.place([(kv[li][0].unsqueeze(0), kv[li][1].unsqueeze(0)) for kv in rows], width)
    mask = torch.zeros((len(rows), width), dtype=torch.long, device=device)
    for i, kv in enumerate(rows):
        mask[i, width - kv[0][0].shape[-2]:] = 1
    return cache, mask


def left_pad(t: torch.Tensor, width: int) -> torch.Tensor:
    """Zero-pad the sequence axis (dim -2 for KV [B,H,T,D], dim -1 for masks [B,T]) on the left."""
    axis = -2 if t.dim() == 4 else -1
    missing = width - t.shape[axis]
    if missing == 0:
        return t
    shape = list(t.shape)
    shape[axis] = missing
    return torch.cat([t.new_zeros(shape), t], dim=axis)
