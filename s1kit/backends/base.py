"""What every backend shares: the tokenizer adapter, the request type and the backend interface.

Stages (eval, data, synth) talk to any backend through :meth:`Backend.generate`, so the same
stage runs on transformers, vLLM or a remote server.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from s1kit.forcing import BudgetMachine, BudgetPolicy, CompiledPolicy, PromptTooLong, SequenceResult


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


class MachineFactory:
    """Builds the budget-forcing machine of a request; mixed into every backend.

    Needs ``self.codec`` (HFCodec) and ``self.context_window`` (int or None). Each policy's
    strings are tokenized once and shared by all sequences that use it.
    """

    codec: HFCodec
    context_window: int | None

    def compile(self, policy: BudgetPolicy) -> CompiledPolicy:
        cache = self.__dict__.setdefault("_compiled", {})
        if policy not in cache:
            cache[policy] = CompiledPolicy(policy, self.codec, self.codec.eos_ids())
        return cache[policy]

    def machine(self, request: "Request") -> BudgetMachine:
        """A machine for one request; raises PromptTooLong if the prompt leaves no room."""
        cp = self.compile(request.policy)
        prompt_len = len(request.prompt_ids) + len(cp.start_ids)
        if self.context_window is not None and prompt_len >= self.context_window:
            raise PromptTooLong(prompt_len, self.context_window)
        return BudgetMachine(cp, cp.resolve_max_thinking(len(request.prompt_ids), self.context_window))


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
