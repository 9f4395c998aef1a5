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
from typing import Any, Sequence

import torch

from s1kit.backends.base import HFCodec, Request, ResultCallback, sample_seed
from s1kit.forcing import BudgetMachine, CompiledPolicy, PromptTooLong, SequenceResult

log = logging.getLogger(__name__)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """fp32 on CPU (bf16 matmuls are slow there), bf16 on GPU."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


class HFBackend:
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
        self._compiled: dict[Any, CompiledPolicy] = {}

    @classmethod
    def from_pretrained(cls, name_or_path: str, revision: str | None = None, batch_size: int = 8,
                        device: str | None = None, dtype: str | None = None,
                        trust_remote_code: bool = False) -> "HFBackend":
        """Load a model and tokenizer from a local folder or a Hub id pinned to ``revision``."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        dev = torch.device(device) if device else default_device()
        torch_dtype = getattr(torch, dtype) if dtype else default_dtype(dev)
        tok = AutoTokenizer.from_pretrained(name_or_path, revision=revision, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(name_or_path, revision=revision, dtype=torch_dtype,
                                                     trust_remote_code=trust_remote_code).to(dev)
        return cls(model, tok, batch_size=batch_size)

    # ------------------------------------------------------------------------------------------

    def compile(self, policy) -> CompiledPolicy:
        cp = self._compiled.get(policy)
        if cp is None:
            cp = self._compiled[policy] = CompiledPolicy(policy, self.codec, self.codec.eos_ids())
        return cp

    def machine(self, request: Request) -> BudgetMachine:
        """A machine for one request; raises PromptTooLong if the prompt leaves no room."""
        cp = self.compile(request.policy)
        prompt_len = len(request.prompt_ids) + len(cp.start_ids)
        if self.context_window is not None and prompt_len >= self.context_window:
            raise PromptTooLong(prompt_len, self.context_window)
        return BudgetMachine(cp, cp.resolve_max_thinking(len(request.prompt_ids), self.context_window))

    @torch.inference_mode()
    def generate(self, requests: Sequence[Request], on_result: ResultCallback | None = None) -> list[SequenceResult]:
        """Generate every request; batches are formed from prompts of similar length."""
        results: list[SequenceResult | None] = [None] * len(requests)
        order = sorted(range(len(requests)), key=lambda i: len(requests[i].prompt_ids))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]

            def done(j: int, res: SequenceResult, chunk=chunk) -> None:
                results[chunk[j]] = res
                if on_result is not None:
                    on_result(chunk[j], res)

            _Batch(self, [requests[i] for i in chunk]).run(done)
        return results  # type: ignore[return-value]


class _Batch:
    """One batch decoded in a single pass; rows leave as they finish."""

    def __init__(self, backend: HFBackend, requests: Sequence[Request]):
        self.b = backend
        self.requests = list(requests)
        self.machines = [backend.machine(r) for r in requests]
        self.generators = [self._generator(r) for r in requests]

    def _generator(self, request: Request) -> torch.Generator | None:
        if request.policy.temperature == 0:
            return None
        gen = torch.Generator(device="cpu")
        gen.manual_seed(sample_seed(request.policy.seed, request.key))
        return gen

    def run(self, done) -> None:
        b, dev = self.b, self.b.device
        seqs = [list(r.prompt_ids) + list(m.prompt_suffix()) for r, m in zip(self.requests, self.machines)]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), b.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[i, width - len(s):] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        from transformers import DynamicCache

        cache = DynamicCache(config=b.model.config)
        out = b.model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev),
                      past_key_values=cache, use_cache=True, logits_to_keep=1)
        mask = mask.to(dev)
        next_pos = mask.sum(-1)  # position of each row's next token
        rows = list(range(len(seqs)))  # batch row -> index into self.machines
        ctx = b.context_window
        while rows:
            logits = out.logits[:, -1, :]
            feed, keep = self._step(logits, rows, mask, next_pos, done, ctx)
            if not keep:
                break
            if len(keep) < len(rows):
                idx = torch.tensor(keep, device=dev)
                cache.batch_select_indices(idx)
                mask, next_pos = mask[idx], next_pos[idx]
                rows = [rows[k] for k in keep]
            mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)
            inp = torch.tensor(feed, dtype=torch.long, device=dev).unsqueeze(1)
            out = b.model(input_ids=inp, attention_mask=mask, position_ids=next_pos.unsqueeze(1),
                          past_key_values=cache, use_cache=True, logits_to_keep=1)
            next_pos = next_pos + 1

    def _step(self, logits: torch.Tensor, rows: list[int], mask: torch.Tensor, next_pos: torch.Tensor,
              done, ctx: int | None) -> tuple[list[int], list[int]]:
        """Pick each row's next input; returns (inputs of the rows that go on, their batch rows)."""
        picked = self._sample(logits, rows)
        feed, keep = [], []
        for k, i in enumerate(rows):
            m = self.machines[i]
            if m.has_forced():
                tok = m.pop_forced()
            else:
                d = m.consume(picked[k])
                if d.rollback:
                    width = mask.shape[1]
                    mask[k, width - d.rollback:] = 0
                    next_pos[k] -= d.rollback
                tok = picked[k] if d.accept else (m.pop_forced() if m.has_forced() else None)
            if not m.done and ctx is not None and int(next_pos[k]) >= ctx:
                m.stop("length")  # the context window is full
            if m.done or tok is None:
                if not m.done:
                    m.stop("length")
                done(i, m.result())
                continue
            feed.append(tok)
            keep.append(k)
        return feed, keep

    def _sample(self, logits: torch.Tensor, rows: list[int]) -> list[int]:
        """Greedy rows in one argmax; banned ids and sampling handled per row only where needed."""
        greedy = logits.argmax(-1).tolist()
        for k, i in enumerate(rows):
            m = self.machines[i]
            if m.has_forced():
                continue
            banned = m.banned_ids()
            gen = self.generators[i]
            if gen is None and (not banned or greedy[k] not in banned):
                continue
            row = logits[k].float().clone()
            if banned:
                row[list(banned)] = float("-inf")
            greedy[k] = int(row.argmax()) if gen is None else _sample_row(row, m.policy, gen)
        return greedy


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
