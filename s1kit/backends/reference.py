"""The s1 reference budget-forcing algorithm on transformers, for benchmarks and equivalence tests.

This is the algorithm of s1's lm-evaluation-harness fork (``vllm_causallms.py``) on
``model.generate``, driven by the one multi-round driver (:mod:`s1kit.forcing.rounds`): round 0
generates thinking after ``<|im_start|>think`` until a stop token or the budget; after a
suppressed stop the ignore string's ids are appended and prompt + everything so far is prefilled
again (``min_tokens=1``); the rounds of a batch move in lock-step, each waiting for its slowest
sequence; the forced close and the answer follow the same way. Two deliberate differences from
the harness, both matching s1's README snippet: the budget is decremented across rounds (the
harness cuts ids afterwards), and token ids are re-fed as ids. Greedy only. Not for production
use: :mod:`s1kit.backends.hf` does the same in one pass.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from s1kit.backends.base import MachineFactory, Request, ResultCallback, init_local
from s1kit.backends.hf.engine import left_pad_batch
from s1kit.forcing import SequenceResult
from s1kit.forcing.rounds import Round, run_rounds


class S1ReferenceBackend(MachineFactory):
    """Multi-round, re-prefilling, lock-step budget forcing (greedy only)."""

    name = "reference"
    prefix_sweep = False
    exact_ids = True
    seeded_sampling = False  # greedy only

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 8, context_window: int | None = None):
        init_local(self, model, tokenizer, batch_size, context_window)
        self.rounds = 0

    @property
    def max_num_seqs(self) -> int:
        return self.batch_size

    def stats(self) -> dict[str, Any]:
        return {"rounds": self.rounds}

    def generate(self, requests: Sequence[Request], on_result: ResultCallback | None = None) -> list[SequenceResult]:
        for r in requests:
            if r.policy.temperature:
                raise ValueError("the reference backend decodes greedily (temperature 0)")
        results: list[SequenceResult] = []
        for start in range(0, len(requests), self.batch_size):
            part = requests[start:start + self.batch_size]
            machines = [self.machine(r) for r in part]
            prefixes = [list(r.prompt_ids) + list(m.prompt_suffix()) for r, m in zip(part, machines)]
            run_rounds(machines, prefixes, [r.key for r in part], self._complete)
            for m in machines:
                res = m.result()
                if on_result is not None:
                    on_result(len(results), res)
                results.append(res)
        return results

    def _complete(self, rounds: list[Round]) -> list[list[int]]:
        """One lock-step ``model.generate`` per group of rounds with the same stops and first-token ban."""
        out: list[list[int]] = [[] for _ in rounds]
        groups: dict[tuple, list[int]] = {}
        for j, r in enumerate(rounds):
            groups.setdefault((tuple(sorted(r.stop_ids)), r.ban_first), []).append(j)
        for (stops, ban_first), idx in groups.items():
            gen = self._generate([rounds[j].context for j in idx], max(rounds[j].max_tokens for j in idx),
                                 list(stops), min_new=1 if ban_first else 0)
            for j, toks in zip(idx, gen):
                out[j] = toks
        self.rounds += 1
        return out

    @torch.inference_mode()
    def _generate(self, seqs: list[list[int]], max_new: int, eos: list[int], min_new: int) -> list[list[int]]:
        """One lock-step ``model.generate`` round over left-padded prompts (full re-prefill)."""
        dev = next(self.model.parameters()).device
        ids, mask = left_pad_batch(seqs, self.pad_id)
        width = ids.shape[1]
        out = self.model.generate(input_ids=ids.to(dev), attention_mask=mask.to(dev), max_new_tokens=max_new,
                                  min_new_tokens=min_new, do_sample=False, eos_token_id=eos or None,
                                  pad_token_id=self.pad_id, top_p=None, top_k=None, temperature=None)
        return [_until_stop(row, eos) for row in out[:, width:].tolist()]


def _until_stop(row: list[int], eos: list[int]) -> list[int]:
    """Generated ids up to and including the first stop id (the rest is padding)."""
    for j, tok in enumerate(row):
        if tok in eos:
            return row[: j + 1]
    return row


def create(model: str, revision: str | None = None, batch_size: int = 8, device: str | None = None,
           dtype: str | None = None) -> S1ReferenceBackend:
    """The registry's factory for 'reference' (loads like 'hf')."""
    from s1kit.backends.hf import HFBackend

    hf = HFBackend.from_pretrained(model, revision=revision, batch_size=batch_size, device=device, dtype=dtype)
    return S1ReferenceBackend(hf.model, hf.tokenizer, batch_size=batch_size, context_window=hf.context_window)
