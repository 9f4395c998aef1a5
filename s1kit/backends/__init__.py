"""The backend contract and registry: every stage builds its backend by name, here.

    from s1kit.backends import create, NAMES
    backend = create("hf", model="./my-model", batch_size=8)
    backend = create("openai", base_url="http://127.0.0.1:8000", model="served-name", tokenizer="./my-model")
    results = backend.generate([Request(prompt_ids, policy, key="q1#0")], on_result=write_row)

Names: ``hf`` (transformers, one pass, shared-prefix sweeps), ``reference`` (s1's multi-round
algorithm on transformers; greedy), ``openai`` (any OpenAI-compatible ``/v1/completions``
server, in exact rounds), ``vllm`` (budget forcing inside vLLM's sampler; extra ``vllm``) and
``vllm-multiround`` (s1's rounds on vLLM with prefix caching). Stages use only what
:class:`Backend` states; a capability (``prefix_sweep``, ``exact_ids``, ``seeded_sampling``) is
a flag, never an ``isinstance`` test.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Protocol, Sequence, runtime_checkable

from s1kit.backends.base import HFCodec, Request, RequestFailed, ResultCallback
from s1kit.forcing import BudgetMachine, BudgetPolicy, CompiledPolicy, ConfigError, SequenceResult


@runtime_checkable
class Backend(Protocol):
    """Everything a stage may use of a backend."""

    name: str
    """The registry name it was created under."""
    codec: HFCodec
    """The tokenizer adapter the machine uses (encode/decode/atomic ids/EOS)."""
    tokenizer: Any
    """The model's Hugging Face tokenizer (chat templates, prompt encoding)."""
    context_window: int | None
    """The model's context in tokens (None: unknown; 'auto' budgets then fail)."""
    prefix_sweep: bool
    """Has ``sweep_chunk``: a budget sweep branches every point off one cached longest run."""
    exact_ids: bool
    """Results are the engine's own token ids (False: a remote server returned text only)."""
    seeded_sampling: bool
    """Sampled tokens depend only on (policy.seed, request key), not on the batch or the engine."""

    @property
    def max_num_seqs(self) -> int:
        """How many sequences it decodes at once: stages hand generate() this many per call."""

    def compile(self, policy: BudgetPolicy) -> CompiledPolicy:
        """The policy's strings tokenized once (cached, bounded)."""

    def machine(self, request: Request) -> BudgetMachine:
        """Prepare the request's machine; raises PromptTooLong when the prompt leaves no room."""

    def generate(self, requests: Sequence[Request], on_result: ResultCallback | None = None) -> list[SequenceResult]:
        """One result per request, in order; ``on_result(i, result)`` as each finishes. A request
        that fails ends alone: the others still finish and are delivered, then the error is raised
        (:class:`RequestFailed` for several)."""

    def stats(self) -> dict[str, Any]:
        """Counters for a stage's manifest (rounds, retries, inexact rounds, ...)."""


_FACTORIES: dict[str, str] = {
    "hf": "s1kit.backends.hf.backend:create",
    "reference": "s1kit.backends.reference:create",
    "openai": "s1kit.backends.openai:create",
    "vllm": "s1kit.backends.vllm.driver:create",
    "vllm-multiround": "s1kit.backends.vllm.driver:create_multiround",
}
NAMES: tuple[str, ...] = tuple(_FACTORIES)


def factory(name: str):
    if name not in _FACTORIES:
        raise ConfigError("backend", name, "one of " + ", ".join(NAMES))
    module, _, attr = _FACTORIES[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def accepted_args(name: str) -> frozenset[str]:
    """The arguments the backend's factory takes (a stage passes only those it sets)."""
    return frozenset(inspect.signature(factory(name)).parameters)


def create(name: str, **args: Any) -> Backend:
    """Build a backend by registry name. Arguments left None are dropped; one the backend does not
    take is an error naming it (never silently ignored)."""
    make = factory(name)
    args = {k: v for k, v in args.items() if v is not None}
    unknown = sorted(set(args) - set(inspect.signature(make).parameters))
    if unknown:
        raise ConfigError(unknown[0], args[unknown[0]], f"unset with backend {name!r} (it takes "
                          f"{', '.join(sorted(inspect.signature(make).parameters))})")
    backend = make(**args)
    backend.name = name
    return backend


__all__ = ["NAMES", "Backend", "HFCodec", "Request", "RequestFailed", "ResultCallback", "accepted_args", "create",
           "factory"]
