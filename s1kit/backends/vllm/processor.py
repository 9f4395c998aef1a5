"""The worker side: :class:`BudgetForcingLogitsProcessor` runs one budget-forcing machine per request
inside vLLM's sampler, and :class:`S1kitWorkerExtension` hands the driver each request's trace."""

from __future__ import annotations

import copy
import logging
import os
import weakref
from collections import OrderedDict
from typing import Any, Sequence

import torch

from s1kit.backends.base import HFCodec
from s1kit.backends.sampling import generator, pick
from s1kit.backends.vllm.replay import (ARG_RESUMABLE, ARG_RESUME, ARG_UID, ReplayError, check_atomic_stops, forced_ids, replay, request_args,
                                        resolve_max_thinking, sentinel_candidates)
from s1kit.forcing import BudgetMachine, BudgetPolicy, CompiledPolicy, Phase, PolicyCache

log = logging.getLogger(__name__)
_NEG_INF = float("-inf")


def _vllm_base() -> type:
    """vLLM's LogitsProcessor ABC when vllm is installed (vLLM accepts only its subclasses)."""
    try:
        from vllm.v1.sample.logits_processor import LogitsProcessor
    except ImportError:
        return object
    return LogitsProcessor


_PROCESSORS: "weakref.WeakSet[BudgetForcingLogitsProcessor]" = weakref.WeakSet()
_FINISHED: "OrderedDict[str, dict[str, Any]]" = OrderedDict()
_SUSPENDED: "OrderedDict[str, _Req]" = OrderedDict()  # stopped by vLLM mid-run; the driver continues them
_MAX_FINISHED = 65536
_MAX_PARKED = 8192


def _direction_is_swap(direct: Any) -> bool:
    return getattr(direct, "name", direct) == "SWAP"


class _Req:
    """One request's forcing state inside the processor."""

    def __init__(self, params: Any, out: list[int], prompt_len: int, cp: CompiledPolicy | None,
                 max_thinking: int | None, key: str, uid: str | None, stop_ids: frozenset[int],
                 error: str | None = None, resumable: bool = False):
        self.params = params  # a strong reference: id(params) stays unique while we hold it
        self.out = out  # vLLM's live list of this request's output ids
        self.prompt_len = prompt_len
        self.cp = cp
        self.max_thinking = max_thinking
        self.uid = uid
        self.stop_ids = stop_ids  # ids on which vLLM ends this request
        self.vllm_greedy = float(getattr(params, "temperature", 0.0) or 0.0) < 1e-5  # vLLM's own sampler is argmax
        self.error = error
        self.resumable = resumable  # suspend (the driver continues) instead of banning vLLM's stop ids
        self.suspended = False  # vLLM stops on the id decided last, which the machine took as a token
        self.base: list[int] = []  # ids emitted by the earlier requests of a continued run
        self.machine = BudgetMachine(cp, max_thinking) if cp is not None and error is None else None
        self.emitted = 0  # output ids the processor decided (vLLM's list has them, bar the last one)
        self.last = -1  # the id decided last
        self.rejected: dict[int, int] = {}  # output position -> the stop sampled there and suppressed
        self.pending = False  # an id was decided and vLLM has not appended it yet
        self.deferred = False  # vLLM's own argmax picks this step's id; the machine consumes it at the next sync
        self.risky = True  # (re)added: this step may be a partial prefill whose sample vLLM discards
        self.gen: torch.Generator | None = None
        self.gen_state: torch.Tensor | None = None
        self.open_thinking = self.open_answering = frozenset()
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
        # a vLLM stop id that the machine would emit while not done ends the request early: ban it, or
        # (resumable) let vLLM stop there and the driver continue the run in a new request
        self.open_thinking = stop_ids - cp.thinking_stops.ids
        self.open_answering = stop_ids - cp.answer_stops.ids
        if not resumable:
            self.ban_thinking, self.ban_answering = self.open_thinking, self.open_answering
        self.gen = generator(cp.policy, key)

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
        self.rejected = {j: raw for j, raw in self.rejected.items() if j < len(self.base) + n}
        self.suspended = False
        if self.machine is not None:
            try:
                self.machine, _ = replay(self.cp, self.max_thinking, self.base + self.out[:n], self.rejected)
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
            return None if self.resumable and self.open_answering else self.ban_answering
        if m.banned_ids() and not (self.resumable and self.open_thinking):
            return self.banned()
        return None  # (resumable: where vLLM's pick may be a stop id, the processor must see the pick)

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
        self.suspended = False
        if m is None or m.done:
            tok = self.sentinel
            if tok is None:
                return None
        else:  # the machine's step; a suppressed stop never reaches vLLM, the first forced id goes instead
            step = m.step(choice)
            if step.suppressed:
                self.rejected[len(self.base) + self.emitted] = choice
            tok = step.feed
            self.suspended = self.resumable and not m.done and tok in self.stop_ids
        self.emitted += 1
        self.last = tok
        self.pending = True
        return tok

    def trace(self) -> dict[str, Any]:
        return {"rejected": [[j, raw] for j, raw in sorted(self.rejected.items())],
                "emitted": len(self.base) + self.emitted, "error": self.error, "suspended": self.suspended}

    def resume(self, params: Any, out: list[int], prompt_len: int, uid: str | None) -> "_Req":
        """This run's state for the request that continues it (this one is never stepped again)."""
        new = copy.copy(self)
        new.params, new.out, new.prompt_len, new.uid, new.stop_ids = params, out, prompt_len, uid, _vllm_stop_ids(params)
        new.base = list(self.machine.ids) if self.machine is not None else self.base + list(self.out)
        new.rejected = dict(self.rejected)
        new.emitted, new.last, new.pending, new.deferred, new.suspended, new.risky = 0, -1, False, False, False, True
        new.gen_state = None
        self.machine = self.gen = self.uid = None
        return new


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
        self._compiled: PolicyCache | None = None  # bounded: `vllm serve` clients send their own policies
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
                choice = choices.get(i)
                if isinstance(choice, BaseException):
                    raise choice
                tok = st.decide(choice)
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

    COMPILE_CACHE = 512

    def compile(self, policy: BudgetPolicy) -> CompiledPolicy:
        if self._compiled is None:
            self._compiled = PolicyCache(self.codec, self.codec.eos_ids(), self.COMPILE_CACHE)
        return self._compiled.get(policy)

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
        if extra.get(ARG_RESUME) is not None:
            old = _SUSPENDED.pop(str(extra[ARG_RESUME]), None)
            if old is None:
                return _Req(params, out, prompt_len, None, None, key, uid, stop_ids,
                            error=f"no suspended request {extra[ARG_RESUME]!r} to resume in this worker")
            return old.resume(params, out, prompt_len, uid)
        cp = None
        try:
            cp = self.compile(policy)
            check_atomic_stops(cp)
            max_thinking = resolve_max_thinking(cp, prompt_ids, self.context_window)
        except ValueError as err:  # ConfigError, PromptTooLong: end the request, never the engine
            log.error("s1kit: request %s rejected: %s", uid or "", err)
            return _Req(params, out, prompt_len, cp, None, key, uid, stop_ids, error=str(err))
        st = _Req(params, out, prompt_len, cp, max_thinking, key, uid, stop_ids,
                  resumable=bool(extra.get(ARG_RESUMABLE)))
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

    def _choose(self, logits: torch.Tensor, need: list[tuple[int, "_Req"]]) -> dict[int, int | BaseException]:
        """Each row's sampled id (the shared sampler: one batched argmax, bans and sampling per row)."""
        for _, st in need:
            if st.gen is not None and st.risky:
                st.gen_state = st.gen.get_state()  # a partial prefill step may be undone
        picked = pick(logits, [i for i, _ in need], [st.banned() for _, st in need],
                      [st.cp.policy for _, st in need], [st.gen for _, st in need], on_cpu=True)
        return {i: tok for (i, _), tok in zip(need, picked)}

    def pop_trace(self, uid: str) -> dict[str, Any] | None:
        for table in (self.active, self.parked):
            for k, st in list(table.items()):
                if st.uid == uid:
                    _suspend(st)
                    st.uid = None  # collected: not stored again when vLLM removes it
                    if table is self.parked:
                        del table[k]
                    return st.trace()
        return None


def _vllm_stop_ids(params: Any) -> frozenset[int]:
    """The ids on which vLLM ends a request: its stop_token_ids, and its EOS unless ignore_eos."""
    ids = set(getattr(params, "stop_token_ids", None) or ())
    eos = None if getattr(params, "ignore_eos", False) else getattr(params, "eos_token_id", None)
    if eos is not None:
        ids.add(eos)
    return frozenset(ids)


def _suspend(st: _Req) -> None:
    """Keep a suspended run's state for the request that continues it (bounded, oldest dropped)."""
    if st.suspended and st.uid is not None:
        _SUSPENDED[st.uid] = st
        while len(_SUSPENDED) > _MAX_PARKED:
            _SUSPENDED.popitem(last=False)


def _store_trace(st: _Req) -> None:
    if st.uid is None:
        return
    _suspend(st)
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


