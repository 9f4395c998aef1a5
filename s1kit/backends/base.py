"""What every backend shares: the tokenizer adapter, the request type, the machine factory.

The contract itself (the :class:`Backend` protocol) and the registry are in :mod:`s1kit.backends`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from s1kit.forcing.rounds import sample_seed
from s1kit.forcing import BudgetMachine, BudgetPolicy, CompiledPolicy, PolicyCache, PromptTooLong, SequenceResult


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
    strings are tokenized once and shared by all sequences that use it (a bounded LRU cache).
    """

    codec: HFCodec
    context_window: int | None
    COMPILE_CACHE = 512

    def compile(self, policy: BudgetPolicy) -> CompiledPolicy:
        cache = self.__dict__.get("_compiled")
        if cache is None or cache.codec is not self.codec:
            cache = self.__dict__["_compiled"] = PolicyCache(self.codec, self.codec.eos_ids(), self.COMPILE_CACHE)
        return cache.get(policy)

    def machine(self, request: "Request") -> BudgetMachine:
        """A machine for one request; raises PromptTooLong if the prompt leaves no room."""
        cp = self.compile(request.policy)
        prompt_len = len(request.prompt_ids) + len(cp.start_ids)
        if self.context_window is not None and prompt_len >= self.context_window:
            raise PromptTooLong(prompt_len, self.context_window)
        return BudgetMachine(cp, cp.resolve_max_thinking(len(request.prompt_ids), self.context_window))


def init_local(backend: Any, model: Any, tokenizer: Any, batch_size: int, context_window: int | None) -> None:
    """The fields of a backend around an in-process transformers model (hf, reference)."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} is invalid: allowed an integer >= 1")
    backend.model = model.eval()
    backend.tokenizer = tokenizer
    backend.codec = HFCodec(tokenizer)
    backend.batch_size = batch_size
    backend.context_window = context_window or getattr(model.config, "max_position_embeddings", None)
    backend.device = next(model.parameters()).device
    backend.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


@dataclass
class Request:
    """One sample to generate: prompt ids plus the policy (per-request policies are allowed)."""

    prompt_ids: list[int]
    policy: BudgetPolicy
    key: str = ""
    """Stable id of the sample; seeds its sampler so results do not depend on batching."""
    meta: dict[str, Any] = field(default_factory=dict)


__all__ = ["HFCodec", "MachineFactory", "Request", "RequestFailed", "ResultCallback", "sample_seed"]

ResultCallback = Callable[[int, SequenceResult], None]


class RequestFailed(RuntimeError):
    """Some requests of a generate() call failed; every other request's result was delivered."""

    def __init__(self, errors: dict[int, BaseException]):
        first = min(errors)
        super().__init__(f"{len(errors)} request(s) failed; request {first}: "
                         f"{type(errors[first]).__name__}: {errors[first]}")
        self.errors = errors

    @classmethod
    def raise_for(cls, errors: dict[int, BaseException]) -> None:
        if not errors:
            return
        if len(errors) == 1:
            raise next(iter(errors.values()))  # one failure: its own exception (PromptTooLong, ...)
        raise cls(errors) from errors[min(errors)]
