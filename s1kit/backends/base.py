"""What every backend shares: the tokenizer adapter, the request type and the backend interface.

Stages (eval, data, synth) talk to any backend through :meth:`Backend.generate`, so the same
stage runs on transformers, vLLM or a remote server.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from s1kit.forcing import BudgetPolicy, SequenceResult


class HFCodec:
    """Adapts a Hugging Face tokenizer to the machine's TokenCodec protocol."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
        self.atomic_ids = frozenset(int(i) for i in added) | frozenset(tokenizer.all_special_ids)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def eos_ids(self) -> list[int]:
        eos = self.tokenizer.eos_token_id
        return [] if eos is None else [eos]


@dataclass
class Request:
    """One sample to generate: prompt ids plus the policy (per-request policies are allowed)."""

    prompt_ids: list[int]
    policy: BudgetPolicy
    key: str = ""
    """Stable id of the sample; seeds its sampler so results do not depend on batching."""
    meta: dict[str, Any] = field(default_factory=dict)


ResultCallback = Callable[[int, SequenceResult], None]


class Backend(Protocol):
    """generate(requests) -> one SequenceResult per request, in order."""

    codec: HFCodec

    def generate(self, requests: Sequence[Request], on_result: ResultCallback | None = None) -> list[SequenceResult]:
        ...


def sample_seed(seed: int, key: str) -> int:
    """A per-sample seed from the policy seed and the sample's key (stable across runs)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
