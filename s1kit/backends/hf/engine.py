"""The transformers engine: the running batch that owns its KV cache (:class:`DecodeLoop`).

Every decoding step feeds exactly one token per live sequence: the token it sampled, or the next
id of its forced queue (ignore string, end delimiter, answer prefix), so forced ids go through the
model like prompt tokens and the prefix is never prefilled again. Sequences finish independently:
a finished row leaves the batch (its KV cache rows are dropped) and the others go on. A
suppressed multi-token stop is removed by masking its cache slots, with position ids that stay
contiguous, which is what a re-prefill without those tokens computes.

The KV cache is the engine's own (:mod:`.kvcache`): a transformers ``DynamicCache`` whose layers
write each step's column into preallocated buffers instead of concatenating it onto the whole cache.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import torch

from s1kit.backends.hf.kvcache import from_rows, merge_into, new_cache
from s1kit.backends.sampling import generator, pick
from s1kit.forcing import BudgetMachine

log = logging.getLogger(__name__)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device, auto: bool = False) -> torch.dtype:
    """bf16 on GPU, fp32 on CPU; with ``auto`` (``--dtype auto``) bf16 on a CPU where it is fast
    (AMX, detected by s1kit.hardware) and fp32 elsewhere."""
    if device.type == "cuda":
        return torch.bfloat16
    if auto:
        from s1kit.hardware import auto_cpu_dtype

        return auto_cpu_dtype()
    return torch.float32


def cache_keyword(model: Any) -> str:
    """The forward argument that takes the KV cache: ``cache`` from transformers 5.24 (where
    ``past_key_values`` is deprecated, to be removed in 5.40), ``past_key_values`` before."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


class Prefilled:
    """A sequence that enters the batch with its KV cache already computed (a sweep branch).

    ``kv`` holds one (keys, values) pair per layer, each [kv_heads, length, head_dim], for the
    prompt and the machine's ids so far; the machine must have forced ids queued (the branch's
    close), so no logits are needed to take its first step.
    """

    __slots__ = ("machine", "kv", "next_pos")

    def __init__(self, machine: BudgetMachine, kv: list[tuple[torch.Tensor, torch.Tensor]], next_pos: int):
        if not machine.has_forced():
            raise ValueError("a prefilled row needs forced ids queued")
        self.machine, self.kv, self.next_pos = machine, kv, next_pos


class _Row:
    """One live sequence in the running batch."""

    __slots__ = ("tag", "machine", "generator")

    def __init__(self, tag: Any, machine: BudgetMachine, generator: torch.Generator | None):
        self.tag, self.machine, self.generator = tag, machine, generator


class DecodeLoop:
    """The running batch: admits requests into free slots, decodes one token per row per step.

    ``run(intake, done, more)`` pulls new ``(tag, request)`` pairs from ``intake(free_slots)``
    whenever slots are free, reports each finished sequence with ``done(tag, result)`` (or
    ``done(tag, exception)`` when a request cannot start), and returns when no row is live and
    ``more()`` is False. Intake items may also be ``(tag, Prefilled)``: rows that bring their
    KV cache (``on_finish_kv`` exports a finished row's cache for that). ``on_step(tag, machine)``, if given, is called after each row's step
    (streaming); tags in ``cancelled`` are stopped with finish_reason 'cancelled'.
    """

    TRIM_EVERY = 64  # steps between checks for cache columns no live row uses any more

    def __init__(self, backend: Any, on_step=None, cancelled: set | None = None, on_finish_kv=None,
                 batch_size: int | None = None):
        self.b = backend
        self.cache_kw = cache_keyword(backend.model)
        self.batch_size = batch_size or backend.batch_size
        self.on_step = on_step
        self.on_finish_kv = on_finish_kv  # (tag, [(keys, values)] per layer) when a row finishes
        self.cancelled = cancelled if cancelled is not None else set()
        self.rows: list[_Row] = []
        self.cache = None
        self.mask: torch.Tensor | None = None  # [rows, columns] 1 where a cache slot is live
        self.next_pos: list[int] = []  # logical position of each row's next token
        self.logits: torch.Tensor | None = None  # [rows, vocab] for the next pick

    @torch.inference_mode()  # for every caller: with autograd on, the cache's graph grows every step
    def run(self, intake, done, more=lambda: False, wait=None) -> None:
        steps = 0
        while True:
            free = self.batch_size - len(self.rows)
            # admit in groups: each admission copies the cache, so wait for a few free slots
            if free and (not self.rows or free >= max(1, self.batch_size // 4)):
                self._admit(intake(free), done)
            if not self.rows:
                if more():
                    continue
                if wait is None or not wait():
                    return
                continue
            feed = self._step(done)
            if feed:
                self._forward(feed)
            steps += 1
            if steps % self.TRIM_EVERY == 0:
                self._trim()

    # -- admission ---------------------------------------------------------------------------

    def _admit(self, items, done) -> None:
        items = list(items)
        ready = [(tag, item) for tag, item in items if isinstance(item, Prefilled)]
        if ready:
            self._admit_prefilled(ready)
        rows, seqs = [], []
        for tag, request in items:
            if isinstance(request, Prefilled):
                continue
            try:
                machine = self.b.machine(request)
            except Exception as err:  # reported per request, the batch goes on
                done(tag, err)
                continue
            rows.append(_Row(tag, machine, generator(request.policy, request.key)))
            seqs.append(list(request.prompt_ids) + list(machine.prompt_suffix()))
        if not rows:
            return
        cache, mask, logits = self._prefill(seqs)
        self._join(rows, cache, mask, logits, [len(s) for s in seqs])

    def _admit_prefilled(self, items) -> None:
        cache, mask = from_rows(self.b.model.config, [p.kv for _, p in items], self.b.device)
        vocab = self.b.model.get_output_embeddings().weight.shape[0]
        logits = torch.zeros((len(items), vocab), device=self.b.device)  # unused: forced ids come first
        rows = [_Row(tag, p.machine, None) for tag, p in items]
        self._join(rows, cache, mask, logits, [p.next_pos for _, p in items])

    def _join(self, rows, cache, mask, logits, next_pos) -> None:
        """Add admitted rows (with their cache, mask and first logits) to the running batch."""
        self.next_pos += next_pos
        if self.cache is None:
            self.cache, self.mask, self.logits = cache, mask, logits
        else:
            self.mask = merge_into(self.cache, self.mask, cache, mask)
            self.logits = torch.cat([self.logits, logits.to(self.logits.dtype)])
        self.rows += rows

    def _prefill(self, seqs: list[list[int]]):
        b, dev = self.b, self.b.device
        ids, mask = left_pad_batch(seqs, b.pad_id)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = new_cache(b.model.config)
        mask = mask.to(dev)
        out = b.model(input_ids=ids.to(dev), attention_mask=mask, position_ids=pos.to(dev),
                      use_cache=True, logits_to_keep=1, **{self.cache_kw: cache})
        return cache, mask, out.logits[:, -1, :]

    # -- decoding ----------------------------------------------------------------------------

    def _step(self, done) -> list[int]:
        """Pick each row's next input, retire finished rows; returns the inputs of the rest.

        A row whose sampler or machine raises is retired alone with ``done(tag, error)``."""
        picked = self._sample()
        feed, keep = [], []
        for k, row in enumerate(self.rows):
            try:
                tok = self._row_step(k, row, picked[k])
            except Exception as err:  # noqa: BLE001 - this sequence fails alone, the batch goes on
                self.cancelled.discard(row.tag)
                done(row.tag, err)
                continue
            if tok is None:
                self._retire(k, row, done)
                continue
            feed.append(tok)
            keep.append(k)
        if len(keep) < len(self.rows):
            self._select(keep)
        return feed

    def _row_step(self, k: int, row: "_Row", picked: "int | BaseException | None") -> int | None:
        """One row's step through its machine: the id to feed, or None when the row is done."""
        m, ctx = row.machine, self.b.context_window
        tok = None
        if row.tag in self.cancelled:
            m.stop("cancelled")
        else:
            if isinstance(picked, BaseException):
                raise picked
            s = m.step(picked)
            if s.rollback:
                self.mask[k, self.mask.shape[1] - s.rollback:] = 0
                self.next_pos[k] -= s.rollback
            tok = s.feed
        if not m.done and ctx is not None and self.next_pos[k] >= ctx:
            m.stop("length")  # the context window is full
        if self.on_step is not None:
            self.on_step(row.tag, m)
        if m.done or tok is None:
            if not m.done:
                m.stop("length")
            return None
        return tok

    def _retire(self, k: int, row: "_Row", done) -> None:
        self.cancelled.discard(row.tag)
        if self.on_finish_kv is not None:
            self.on_finish_kv(row.tag, self._row_kv(k))
        done(row.tag, row.machine.result())

    def _row_kv(self, k: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Row k's cache without its masked columns: [kv_heads, live length, head_dim] per layer."""
        live = self.mask[k].bool()
        return [(layer.keys[k][:, live].clone(), layer.values[k][:, live].clone()) for layer in self.cache.layers]

    def _select(self, keep: list[int]) -> None:
        if not keep:
            self.rows, self.next_pos, self.cache, self.mask, self.logits = [], [], None, None, None
            return
        idx = torch.tensor(keep, device=self.b.device)
        self.cache.batch_select_indices(idx)
        self.mask = self.mask[idx]
        self.rows = [self.rows[k] for k in keep]
        self.next_pos = [self.next_pos[k] for k in keep]

    def _forward(self, feed: list[int]) -> None:
        dev = self.b.device
        self.mask = torch.cat([self.mask, self.mask.new_ones((len(feed), 1))], dim=1)
        inp = torch.tensor(feed, dtype=torch.long, device=dev).unsqueeze(1)
        pos = torch.tensor(self.next_pos, dtype=torch.long, device=dev).unsqueeze(1)
        out = self.b.model(input_ids=inp, attention_mask=self.mask, position_ids=pos,
                           use_cache=True, logits_to_keep=1, **{self.cache_kw: self.cache})
        self.next_pos = [p + 1 for p in self.next_pos]
        self.logits = out.logits[:, -1, :]

    def _trim(self) -> None:
        """Drop leading cache columns that no live row attends to (left over from finished rows)."""
        if self.mask is None:
            return
        live = self.mask.any(0).nonzero()
        first = int(live[0]) if len(live) else 0
        if first >= 32:
            self.mask = self.mask[:, first:]
            for layer in self.cache.layers:
                layer.drop_leading(first)

    def _sample(self) -> list:
        """Each row's sampled id (None where forced ids come next; an exception where it failed)."""
        need = [k for k, row in enumerate(self.rows) if row.machine.needs_sample]
        machines = [self.rows[k].machine for k in need]
        picked = pick(self.logits, need, [m.banned_ids() for m in machines], [m.policy for m in machines],
                      [self.rows[k].generator for k in need])
        out: list = [None] * len(self.rows)
        for k, tok in zip(need, picked):
            out[k] = tok
        return out


def left_pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ids and attention mask ([batch, longest]) for prompts of different lengths."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s):] = torch.tensor(list(s), dtype=torch.long)
        mask[i, width - len(s):] = 1
    return ids, mask
