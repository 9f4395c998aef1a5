"""What the vLLM processor (worker side) and the driver share: request arguments, stop sentinels,
and the replay that rebuilds a run's machine from the ids vLLM emitted (pure Python)."""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, Sequence

from s1kit.forcing import BudgetMachine, BudgetPolicy, CompiledPolicy, ConfigError, SequenceResult

PROCESSOR_FQCN = "s1kit.backends.vllm:BudgetForcingLogitsProcessor"
WORKER_EXTENSION = "s1kit.backends.vllm.S1kitWorkerExtension"

# Keys of SamplingParams.extra_args (flat, so that `vllm serve` clients can pass them as vllm_xargs).
ARG_POLICY = "s1kit"
"""The BudgetPolicy: a mapping of its fields, or the same as a JSON string (vllm_xargs is flat)."""
ARG_KEY = "s1kit_key"
"""The sample's key: seeds its sampler (with policy.seed), as Request.key does."""
ARG_UID = "s1kit_uid"
"""An id under which the worker keeps the request's trace until the driver collects it."""
ARG_RESUMABLE = "s1kit_resumable"
"""The driver continues the request if vLLM stops it on a stop id the machine took as an ordinary
token (an r1 run's EOS while thinking): the processor then bans no id that the hf engine allows."""
ARG_RESUME = "s1kit_resume"
"""The uid of the suspended request that this one continues (prompt: its prompt and every id so far)."""


class ReplayError(RuntimeError):
    """vLLM's output ids do not follow the forcing machine (the processor was not applied)."""


def request_args(extra_args: Mapping[str, Any] | None) -> tuple[BudgetPolicy, str, str | None] | None:
    """(policy, key, uid) from SamplingParams.extra_args, or None for a request without forcing."""
    if not extra_args or extra_args.get(ARG_POLICY) is None:
        return None
    raw = extra_args[ARG_POLICY]
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as err:
            raise ConfigError(ARG_POLICY, raw, f"a BudgetPolicy mapping or its JSON ({err})") from None
    policy = raw if isinstance(raw, BudgetPolicy) else BudgetPolicy.from_dict(raw)
    uid = extra_args.get(ARG_UID)
    return policy, str(extra_args.get(ARG_KEY, "")), (str(uid) if uid is not None else None)


def check_atomic_stops(cp: CompiledPolicy) -> None:
    """The processor mode needs thinking stops that are single atomic tokens (no rollback in vLLM)."""
    if cp.policy.thinks and cp.thinking_stops.texts:
        raise ConfigError("thinking_stops", cp.policy.thinking_stops,
                          "single special tokens with the vLLM processor (vLLM cannot roll back its KV "
                          f"cache; {list(cp.thinking_stops.texts)} are several tokens): use the transformers "
                          "backend or VLLMBackend(mode='multiround') for multi-token stops")


def forced_ids(cp: CompiledPolicy) -> frozenset[int]:
    """Every id the machine may force (they must not make vLLM stop)."""
    ids = set(cp.end_ids) | set(cp.cap_ids) | set(cp.newline_ids)
    for seq in cp.ignore_ids:
        ids |= set(seq)
    return frozenset(ids)


def sentinel_candidates(cp: CompiledPolicy) -> list[int]:
    """Stop ids to end a finished request with, best first.

    Best: an id that ends the answer (so the machine finishes when it samples it) and, with a
    thinking phase, is also a thinking stop (so the machine never emits it while thinking), and is
    never forced: vLLM may then stop on it without ever cutting a sequence short. Next: any atomic
    answer stop that is never forced (with a thinking phase the processor bans it while thinking).
    """
    forced = forced_ids(cp)
    answer = sorted(cp.answer_stops.ids - forced)
    if not cp.policy.thinks:
        return answer
    best = [t for t in answer if t in cp.thinking_stops.ids]
    return best + [t for t in answer if t not in cp.thinking_stops.ids]


def stop_sentinel(cp: CompiledPolicy) -> int:
    """The stop id the driver puts in SamplingParams.stop_token_ids (with ignore_eos=True)."""
    cands = sentinel_candidates(cp)
    if not cands:
        raise ConfigError("answer_stops", cp.policy.answer_stops,
                          "at least one single-token answer stop that is never forced (the tokenizer's EOS "
                          "counts): the vLLM processor ends a request by forcing it")
    return cands[0]


def resolve_max_thinking(cp: CompiledPolicy, prompt_ids: Sequence[int] | None,
                         context_window: int | None) -> int | None:
    """The request's thinking cap; ``prompt_ids`` are those sent to vLLM (thinking start included)."""
    if cp.policy.max_thinking_tokens != "auto":
        return cp.resolve_max_thinking(0, context_window)
    if prompt_ids is None:
        raise ConfigError("max_thinking_tokens", "auto", "an integer when vLLM gives no prompt token ids")
    n = len(prompt_ids)
    start = cp.start_ids
    if start and len(prompt_ids) >= len(start) and tuple(prompt_ids[-len(start):]) == tuple(start):
        n -= len(start)
    return cp.resolve_max_thinking(n, context_window)


def replay(cp: CompiledPolicy, max_thinking: int | None, tokens: Sequence[int],
           rejected: Mapping[int, int]) -> tuple[BudgetMachine, list[int]]:
    """Rebuild a run's machine from the ids vLLM emitted.

    ``rejected`` maps output positions to the stop the model sampled there and the machine
    suppressed (the id emitted at that position is then the first forced id). Returns the machine
    and the ids emitted after it was done (the sentinel, if vLLM needed it to stop). Raises
    :class:`ReplayError` when the ids are not a run of this machine.
    """
    m = BudgetMachine(cp, max_thinking)
    for j, tok in enumerate(tokens):
        if m.done:
            return m, list(tokens[j:])
        raw = rejected.get(j)
        forced = m.has_forced()
        if forced and raw is not None:
            raise ReplayError(f"output position {j}: a stop was recorded where the machine forces ids")
        s = m.step(raw if raw is not None else (None if forced else tok))
        if raw is not None and not s.suppressed:
            raise ReplayError(f"output position {j}: the recorded stop {raw} was not suppressed on replay")
        if raw is None and s.suppressed:
            raise ReplayError(f"output position {j}: id {tok} is a stop the machine suppresses, yet vLLM "
                              "emitted it (was the s1kit logits processor applied?)")
        if s.feed != tok:
            after = " after a stop" if s.suppressed else ""
            raise ReplayError(f"output position {j}: the machine forces id {s.feed}{after}, vLLM emitted {tok}")
    return m, []


def finish_result(m: BudgetMachine, trailing: Sequence[int], sentinels: Iterable[int]) -> SequenceResult:
    """The run's result; ids after the machine finished may only be the sentinel."""
    allowed = set(sentinels)
    if len(trailing) > 1 or any(t not in allowed for t in trailing):
        raise ReplayError(f"vLLM emitted {list(trailing)} after the machine finished")
    if not m.done:
        m.stop("length")  # vLLM ended it: max_model_len or max_tokens
    return m.result()


