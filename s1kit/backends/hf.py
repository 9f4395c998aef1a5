"""transformers backend: batched budget forcing in one decoding pass that keeps the KV cache.

    from s1kit.backends.hf import HFBackend
    backend = HFBackend.from_pretrained("simplescaling/s1.1-32B", revision="<commit>")

Every decoding step feeds exactly one token per live sequence: the token it sampled, or the next
id of its forced queue (ignore string, end delimiter, answer prefix), so forced ids go through the
model like prompt tokens and the prefix is never prefilled again. Sequences finish independently:
a finished row leaves the batch (its KV cache rows are dropped) and the others go on. A
suppressed multi-token stop is removed by masking its cache slots, with position ids that stay
contiguous, which is what a re-prefill without those tokens computes.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any, Sequence

import torch

from s1kit.backends.base import HFCodec, MachineFactory, Request, ResultCallback, sample_seed
from s1kit.forcing import BudgetMachine, SequenceResult

log = logging.getLogger(__name__)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """fp32 on CPU (bf16 matmuls are slow there), bf16 on GPU."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def cache_keyword(model: Any) -> str:
    """The forward argument that takes the KV cache: ``cache`` from transformers 5.24 (where
    ``past_key_values`` is deprecated, to be removed in 5.40), ``past_key_values`` before."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


class HFBackend(MachineFactory):
    """Budget-forced generation on a transformers causal LM."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 8, context_window: int | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} is invalid: allowed an integer >= 1")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.codec = HFCodec(tokenizer)
        self.batch_size = batch_size
        self.context_window = context_window or getattr(model.config, "max_position_embeddings", None)
        self.device = next(model.parameters()).device
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @classmethod
    def from_pretrained(cls, name_or_path: str, revision: str | None = None, batch_size: int = 8,
                        device: str | None = None, dtype: str | None = None,
                        trust_remote_code: bool = False) -> "HFBackend":
        """Load a model and tokenizer from a local folder, a ``.gguf`` file or a Hub id pinned to ``revision``."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from s1kit.gguf import resolve_model

        name_or_path = resolve_model(name_or_path)
        dev = torch.device(device) if device else default_device()
        torch_dtype = getattr(torch, dtype) if dtype else default_dtype(dev)
        tok = AutoTokenizer.from_pretrained(name_or_path, revision=revision, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(name_or_path, revision=revision, dtype=torch_dtype,
                                                     trust_remote_code=trust_remote_code).to(dev)
        return cls(model, tok, batch_size=batch_size)

    # ------------------------------------------------------------------------------------------

    @torch.inference_mode()
    def generate(self, requests: Sequence[Request], on_result: ResultCallback | None = None) -> list[SequenceResult]:
        """Generate every request with continuous batching; results come back in input order.

        Prompts are admitted shortest first (less padding); when sequences finish, waiting
        prompts take their slots, so the batch stays full until the queue runs dry.
        """
        results: list[SequenceResult | None] = [None] * len(requests)
        queue = deque(sorted(range(len(requests)), key=lambda i: len(requests[i].prompt_ids)))

        def intake(n: int) -> list[tuple[int, Request]]:
            return [(i, requests[i]) for i in (queue.popleft() for _ in range(min(n, len(queue))))]

        def done(i: int, res: SequenceResult | BaseException) -> None:
            if isinstance(res, BaseException):
                raise res
            results[i] = res
            if on_result is not None:
                on_result(i, res)

        DecodeLoop(self).run(intake, done, more=lambda: bool(queue))
        return results  # type: ignore[return-value]


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

    def __init__(self, backend: HFBackend, on_step=None, cancelled: set | None = None, on_finish_kv=None,
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
            rows.append(_Row(tag, machine, _generator(request)))
            seqs.append(list(request.prompt_ids) + list(machine.prompt_suffix()))
        if not rows:
            return
        cache, mask, logits = self._prefill(seqs)
        self._join(rows, cache, mask, logits, [len(s) for s in seqs])

    def _admit_prefilled(self, items) -> None:
        from transformers import DynamicCache

        width = max(p.kv[0][0].shape[-2] for _, p in items)
        cache = DynamicCache(config=self.b.model.config)
        for li, layer in enumerate(cache.layers):
            keys = torch.stack([_left_pad(p.kv[li][0].unsqueeze(0), width)[0] for _, p in items])
            values = torch.stack([_left_pad(p.kv[li][1].unsqueeze(0), width)[0] for _, p in items])
            layer.lazy_initialization(keys, values)
            layer.keys, layer.values = keys, values
        mask = torch.zeros((len(items), width), dtype=torch.long, device=self.b.device)
        for i, (_, p) in enumerate(items):
            mask[i, width - p.kv[0][0].shape[-2]:] = 1
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
            self.mask = _merge_caches(self.cache, self.mask, cache, mask)
            self.logits = torch.cat([self.logits, logits.to(self.logits.dtype)])
        self.rows += rows

    def _prefill(self, seqs: list[list[int]]):
        from transformers import DynamicCache

        b, dev = self.b, self.b.device
        ids, mask = left_pad_batch(seqs, b.pad_id)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=b.model.config)
        mask = mask.to(dev)
        out = b.model(input_ids=ids.to(dev), attention_mask=mask, position_ids=pos.to(dev),
                      use_cache=True, logits_to_keep=1, **{self.cache_kw: cache})
        return cache, mask, out.logits[:, -1, :]

    # -- decoding ----------------------------------------------------------------------------

    def _step(self, done) -> list[int]:
        """Pick each row's next input, retire finished rows; returns the inputs of the rest."""
        picked = self._sample()
        ctx = self.b.context_window
        feed, keep = [], []
        width = self.mask.shape[1]
        for k, row in enumerate(self.rows):
            m = row.machine
            if row.tag in self.cancelled:
                m.stop("cancelled")
                tok = None
            elif m.has_forced():
                tok = m.pop_forced()
            else:
                d = m.consume(picked[k])
                if d.rollback:
                    self.mask[k, width - d.rollback:] = 0
                    self.next_pos[k] -= d.rollback
                tok = picked[k] if d.accept else (m.pop_forced() if m.has_forced() else None)
            if not m.done and ctx is not None and self.next_pos[k] >= ctx:
                m.stop("length")  # the context window is full
            if self.on_step is not None:
                self.on_step(row.tag, m)
            if m.done or tok is None:
                if not m.done:
                    m.stop("length")
                self.cancelled.discard(row.tag)
                if self.on_finish_kv is not None:
                    self.on_finish_kv(row.tag, self._row_kv(k))
                done(row.tag, m.result())
                continue
            feed.append(tok)
            keep.append(k)
        if len(keep) < len(self.rows):
            self._select(keep)
        return feed

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
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]

    def _sample(self) -> list[int]:
        """Greedy rows in one argmax; banned ids and sampling handled per row only where needed."""
        logits = self.logits
        greedy = logits.argmax(-1).tolist()
        for k, row in enumerate(self.rows):
            m = row.machine
            if m.has_forced():
                continue
            banned = m.banned_ids()
            if row.generator is None and (not banned or greedy[k] not in banned):
                continue
            vec = logits[k].float().clone()
            if banned:
                vec[list(banned)] = float("-inf")
            greedy[k] = int(vec.argmax()) if row.generator is None else _sample_row(vec, m.policy, row.generator)
        return greedy


def left_pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ids and attention mask ([batch, longest]) for prompts of different lengths."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s):] = torch.tensor(list(s), dtype=torch.long)
        mask[i, width - len(s):] = 1
    return ids, mask


def _generator(request: Request) -> torch.Generator | None:
    if request.policy.temperature == 0:
        return None
    gen = torch.Generator(device="cpu")
    gen.manual_seed(sample_seed(request.policy.seed, request.key))
    return gen


def _merge_caches(cache, mask: torch.Tensor, new_cache, new_mask: torch.Tensor) -> torch.Tensor:
    """Append the rows of ``new_cache`` to ``cache`` (in place), left-padding the shorter side.

    Padding slots are masked out, and position ids are explicit, so a row's outputs do not
    depend on how many columns sit to its left.
    """
    width = max(mask.shape[1], new_mask.shape[1])
    for layer, new in zip(cache.layers, new_cache.layers):
        layer.keys = torch.cat([_left_pad(layer.keys, width), _left_pad(new.keys, width)])
        layer.values = torch.cat([_left_pad(layer.values, width), _left_pad(new.values, width)])
    return torch.cat([_left_pad(mask, width), _left_pad(new_mask, width)])


def _left_pad(t: torch.Tensor, width: int) -> torch.Tensor:
    """Zero-pad the sequence axis (dim -2 for KV [B,H,T,D], dim -1 for masks [B,T]) on the left."""
    axis = -2 if t.dim() == 4 else -1
    missing = width - t.shape[axis]
    if missing == 0:
        return t
    shape = list(t.shape)
    shape[axis] = missing
    return torch.cat([t.new_zeros(shape), t], dim=axis)


def _sample_row(row: torch.Tensor, policy, gen: torch.Generator) -> int:
    """Temperature, top-k and top-p sampling of one row of logits with its own generator."""
    row = row / policy.temperature
    if policy.top_k and policy.top_k < row.numel():
        kth = torch.topk(row, policy.top_k).values[-1]
        row = row.masked_fill(row < kth, float("-inf"))
    probs = torch.softmax(row, dim=-1)
    if policy.top_p < 1.0:
        sorted_p, sorted_i = torch.sort(probs, descending=True)
        cum = sorted_p.cumsum(-1)
        cut = cum - sorted_p > policy.top_p  # keep the smallest prefix with mass >= top_p
        sorted_p = sorted_p.masked_fill(cut, 0.0)
        probs = torch.zeros_like(probs).scatter(0, sorted_i, sorted_p)
    return int(torch.multinomial(probs.cpu(), 1, generator=gen))
