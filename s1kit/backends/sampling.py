"""The one sampler every engine uses: greedy, temperature, top-k, top-p, per-sample seeded generators.

    gens = [generator(policy, key) for ...]          # None for greedy rows
    picked = pick(logits, rows, banned, policies, gens)

A sample's generator is seeded from (policy.seed, request key) by :func:`sample_seed`, so its
tokens do not depend on which other sequences share the batch. A row whose sampling raises
(NaN logits, ...) gets the exception in its place in the returned list: only that row fails.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from s1kit.backends.base import sample_seed

_NEG_INF = float("-inf")


def generator(policy: Any, key: str) -> torch.Generator | None:
    """The sample's own CPU generator (None for greedy decoding)."""
    if policy.temperature == 0:
        return None
    gen = torch.Generator(device="cpu")
    gen.manual_seed(sample_seed(policy.seed, key))
    return gen


def argmax_rows(logits: torch.Tensor, rows: Sequence[int] | None = None) -> list[int]:
    """Row-wise argmax (first maximum, like torch.argmax). On CPU through numpy, whose argmax is
    vectorised: torch's CPU argmax over a 150k vocabulary costs milliseconds per row."""
    full = rows is None or len(rows) == logits.shape[0]
    logits = logits.detach()
    if logits.device.type == "cpu" and logits.dtype in (torch.float32, torch.float64, torch.float16):
        arr = logits.numpy()
        return (arr if full else arr[list(rows)]).argmax(-1).tolist()
    if full:
        return logits.argmax(-1).tolist()
    return logits[torch.tensor(list(rows), device=logits.device)].argmax(-1).tolist()


def sample_row(row: torch.Tensor, policy: Any, gen: torch.Generator) -> int:
    """Temperature, top-k and top-p sampling of one row of logits with its own generator."""
    row = row / policy.temperature
    if policy.top_k and policy.top_k < row.numel():
        kth = torch.topk(row, policy.top_k).values[-1]
        row = row.masked_fill(row < kth, _NEG_INF)
    probs = torch.softmax(row, dim=-1)
    if policy.top_p < 1.0:
        sorted_p, sorted_i = torch.sort(probs, descending=True)
        cum = sorted_p.cumsum(-1)
        cut = cum - sorted_p > policy.top_p  # keep the smallest prefix with mass >= top_p
        sorted_p = sorted_p.masked_fill(cut, 0.0)
        probs = torch.zeros_like(probs).scatter(0, sorted_i, sorted_p)
    return int(torch.multinomial(probs.cpu(), 1, generator=gen))


def pick(logits: torch.Tensor, rows: Sequence[int], banned: Sequence[frozenset[int]], policies: Sequence[Any],
         gens: Sequence[torch.Generator | None], on_cpu: bool = False) -> list[int | BaseException]:
    """Each listed row's next id: one batched argmax; rows with banned ids or sampling redone alone
    (``on_cpu``: sampled rows are moved to the CPU first, as the vLLM processor does)."""
    if not rows:
        return []
    greedy: list[int | BaseException] = list(argmax_rows(logits, rows))
    for j, i in enumerate(rows):
        ban, gen = banned[j], gens[j]
        if gen is None and (not ban or greedy[j] not in ban):
            continue
        try:
            vec = logits[i].float().clone()
            if ban:
                vec[list(ban)] = _NEG_INF
            greedy[j] = int(vec.argmax()) if gen is None else sample_row(vec.cpu() if on_cpu else vec, policies[j], gen)
        except Exception as err:  # noqa: BLE001 - this row fails alone
            greedy[j] = err
    return greedy
