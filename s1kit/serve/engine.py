"""The serving engine: one continuous-batching DecodeLoop in a background thread, shared by all requests.

    engine = EngineService(HFBackend.from_pretrained(path), max_num_seqs=16, max_queue=256)
    engine.start()
    machine = engine.prepare(prompt_ids, policy, max_tokens=256)      # validates, may raise
    tag = engine.submit(Job(request, machine, sink=on_event, stream=True))
    engine.cancel(tag)                                                 # client went away
    engine.stop()

Requests from any thread (the asyncio server, tests) go into a thread-safe intake queue; the
decode thread pulls them into free batch slots of :class:`s1kit.backends.hf.DecodeLoop`, so
concurrent requests share every forward pass. Each job reports through its ``sink`` (called on the
decode thread; the server wraps it in ``loop.call_soon_threadsafe``): :class:`Delta` events while
it runs (streaming jobs only), then exactly one :class:`Finished` or :class:`Failed`.

Streaming text is detokenized incrementally (prefix/read offsets; text ending in U+FFFD waits for
the rest of its bytes) and split into reasoning (``ids[:thinking_end_at]``) and content
(``ids[answer_start:answer_end]``) exactly where :meth:`BudgetMachine.result` splits them; tokens
that a multi-token stop sequence could still remove are held back, so the concatenated deltas
always equal the final texts.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from s1kit.backends.base import Request
from s1kit.serve.detok import Delta, _Segment, _StreamState, final_texts  # noqa: F401 (re-exported)
from s1kit.forcing import (AUTO, BudgetMachine, BudgetPolicy, CompiledPolicy, ConfigError, Phase, PromptTooLong,
                           SequenceResult)
from s1kit.forcing.machine import Decision, PolicyCache

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# events and jobs
# ---------------------------------------------------------------------------------------------


@dataclass
class Finished:
    """A job's end: the machine's result and the texts as the response shows them."""

    result: SequenceResult
    reasoning: str | None
    """Thinking text (None in plain mode: no thinking phase)."""
    content: str
    """Answer text (the whole completion in plain mode), stop sequence excluded."""
    text: str
    """The full completion: thinking, forced delimiters and answer (the stop excluded unless asked)."""
    completion_ids: list[int]
    """Every id the server generated or forced after the prompt: thinking start delimiter included."""


@dataclass
class Failed:
    error: BaseException


Event = Delta | Finished | Failed


@dataclass
class Job:
    """One sequence: the request, its prepared machine and where its events go."""

    request: Request
    machine: BudgetMachine
    sink: Callable[[Event], None]
    stream: bool = False
    split: bool = True
    """Stream reasoning and content apart (chat); False: one text (completions)."""
    skip_special_tokens: bool = False
    include_stop: bool = False
    """Keep the stop sequence at the end of ``text`` (vLLM's include_stop_str_in_output)."""
    detok: "_StreamState | None" = None


class QueueFull(RuntimeError):
    """The engine holds its maximum number of sequences (running + waiting)."""


class EngineClosed(RuntimeError):
    """The engine is stopping or stopped."""


# ---------------------------------------------------------------------------------------------
# the machine the server drives
# ---------------------------------------------------------------------------------------------


class ServeMachine(BudgetMachine):
    """A BudgetMachine with two serving limits on top (the budget logic itself is untouched).

    ``limit``: at most this many ids after the prompt suffix (so ``completion_tokens`` never
    exceeds the request's ``max_tokens``, even when ``min_thinking_tokens`` forces more ignore
    strings than were reserved); reaching it stops the sequence with finish_reason 'length'.
    ``min_tokens`` / ``min_ban``: in the answer phase, ban these ids (stops, EOS) until that many
    answer tokens were generated (vLLM's ``min_tokens``; the remote backend uses it to replay the
    machine's first-token ban of a thinking round over plain completions).
    """

    def __init__(self, compiled: CompiledPolicy, max_thinking: int | None, limit: int | None = None,
                 min_tokens: int = 0, min_ban: frozenset[int] = frozenset()):
        self.limit = limit
        self.min_tokens = min_tokens
        self.min_ban = frozenset(min_ban)
        super().__init__(compiled, max_thinking)
        self._enforce_limit()

    def banned_ids(self) -> frozenset[int]:
        banned = super().banned_ids()
        if self.min_tokens and self.phase is Phase.ANSWERING and self.answer_tokens < self.min_tokens:
            banned = banned | self.min_ban
        return banned

    fault: BaseException | None = None
    """Set when this sequence's own step raised (a bug): it stops and its request alone fails."""

    def consume(self, tok: int):
        try:
            decision = super().consume(tok)
        except Exception as err:  # one sequence's fault is its own: stop it, keep the batch going
            log.exception("a sequence's budget machine failed; failing its request only")
            self.fault = err
            self.stop("error")
            return Decision(accept=False)
        self._enforce_limit()
        return decision

    def pop_forced(self) -> int:
        tok = super().pop_forced()
        self._enforce_limit()
        return tok

    def _enforce_limit(self) -> None:
        if self.limit is not None and not self.done and len(self.ids) >= self.limit:
            self.stop("length")


# ---------------------------------------------------------------------------------------------
# the service
# ---------------------------------------------------------------------------------------------


class _LoopBackend:
    """What DecodeLoop needs from a backend, with machines prepared ahead by the service."""

    def __init__(self, backend: Any, batch_size: int):
        self.model = backend.model
        self.tokenizer = backend.tokenizer
        self.codec = backend.codec
        self.context_window = backend.context_window
        self.device = backend.device
        self.pad_id = backend.pad_id
        self.batch_size = batch_size

    def machine(self, request: Request) -> BudgetMachine:
        return request.meta["machine"]


class EngineService:
    """One decode thread running a DecodeLoop; submit()/cancel() are safe from any thread."""

    COMPILE_CACHE = 512

    def __init__(self, backend: Any, max_num_seqs: int = 16, max_queue: int = 256):
        if max_num_seqs < 1 or max_queue < 0:
            raise ValueError("max_num_seqs must be >= 1 and max_queue >= 0")
        self.backend = backend
        self.codec = backend.codec
        self.tokenizer = backend.tokenizer
        self.context_window: int | None = backend.context_window
        emb = backend.model.get_input_embeddings()
        self.vocab_size = int(getattr(emb, "num_embeddings", backend.model.config.vocab_size))
        self.max_num_seqs = max_num_seqs
        self.max_queue = max_queue
        self._loop_backend = _LoopBackend(backend, max_num_seqs)
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._pending: OrderedDict[int, Job] = OrderedDict()
        self._active: dict[int, Job] = {}
        self._cancelled: set[int] = set()
        self._tags = itertools.count(1)
        self._compiled = PolicyCache(self.codec, maxsize=self.COMPILE_CACHE)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.crashes = 0
        self.failed_alone = 0
        self._score_lock = threading.Lock()
        self.finish_counts: Counter[str] = Counter()  # finish_reason -> sequences (for /health and tests)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "EngineService":
        if self._thread is None:
            self._thread = threading.Thread(target=self._main, name="s1kit-engine", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        with self._lock:
            self._stopping = True
            pending = list(self._pending.values())
            self._pending.clear()
            self._cancelled.update(self._active)
            self._cv.notify_all()
        for job in pending:
            _emit(job, Failed(EngineClosed("the server is shutting down")))
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    def load(self) -> dict[str, int]:
        with self._lock:
            return {"running": len(self._active), "waiting": len(self._pending),
                    "max_num_seqs": self.max_num_seqs, "max_queue": self.max_queue}

    # -- requests ----------------------------------------------------------------------------

    def compile(self, policy: BudgetPolicy, eos_ids: Sequence[int]) -> CompiledPolicy:
        """A compiled policy from a bounded LRU cache (per-request policies must not leak)."""
        return self._compiled.get(policy, eos_ids)

    def prepare(self, prompt_ids: Sequence[int], policy: BudgetPolicy, *, max_tokens: int,
                stop_ids: Sequence[int] = (), ignore_eos: bool = False, min_tokens: int = 0) -> ServeMachine:
        """A machine for one request; nothing is queued. Raises PromptTooLong or ConfigError.

        ``max_tokens`` bounds every id after the prompt (thinking start delimiter included),
        and, when the policy thinks, holds the answer reserve: the thinking cap is
        ``min(policy cap, max_tokens - max_answer_tokens - forced overhead)``, the overhead being
        the delimiters, the answer prefix and ``num_ignore`` ignore strings. The context window
        bounds ``max_tokens`` the same way.
        """
        eos = [] if ignore_eos else list(self.codec.eos_ids())
        cp = self.compile(policy, sorted(set(eos) | set(stop_ids)))
        prompt_len = len(prompt_ids) + len(cp.start_ids)
        ctx = self.context_window
        if ctx is not None and prompt_len >= ctx:
            raise PromptTooLong(prompt_len, ctx)
        budget = max_tokens if ctx is None else min(max_tokens, ctx - len(prompt_ids))
        cap = None
        if policy.thinks:
            overhead = cp.forced_overhead() + policy.num_ignore * max(len(i) for i in cp.ignore_ids)
            room = budget - policy.max_answer_tokens - overhead
            if room < policy.min_thinking_tokens:
                need = policy.max_answer_tokens + overhead + policy.min_thinking_tokens
                raise ConfigError("max_tokens", max_tokens,
                                  f"at least {need} here: answer reserve {policy.max_answer_tokens} + forced "
                                  f"delimiters and ignore strings {overhead} + min_thinking_tokens "
                                  f"{policy.min_thinking_tokens}" + ("" if budget == max_tokens else
                                                                     f" (the context leaves {budget})"))
            if policy.max_thinking_tokens == AUTO and ctx is None:
                cap = room  # no context window known: max_tokens alone sets the cap
            else:
                cap = min(cp.resolve_max_thinking(len(prompt_ids), ctx), room)  # type: ignore[type-var]
        limit = budget - len(cp.start_ids) if cap is not None else budget
        min_ban = frozenset(cp.answer_stops.ids) if min_tokens else frozenset()
        return ServeMachine(cp, cap, limit=max(1, limit), min_tokens=min_tokens, min_ban=min_ban)

    def submit(self, job: Job) -> int:
        """Queue a job; raises QueueFull when running + waiting sequences are at the limit."""
        if job.stream:
            job.detok = _StreamState(job.split)
        job.request.meta["machine"] = job.machine
        with self._lock:
            if self._stopping:
                raise EngineClosed("the server is shutting down")
            if len(self._pending) + len(self._active) >= self.max_num_seqs + self.max_queue:
                raise QueueFull(f"{self.max_num_seqs} sequences running and {len(self._pending)} waiting")
            tag = next(self._tags)
            self._pending[tag] = job
            self._cv.notify()
        return tag

    def cancel(self, tag: int) -> None:
        """Stop a job (finish_reason 'cancelled'); a job still waiting is dropped at once."""
        with self._lock:
            job = self._pending.pop(tag, None)
            if job is None and tag in self._active:
                self._cancelled.add(tag)
        if job is not None:
            job.machine.stop("cancelled")
            self._finish(job, job.machine.result())

    # -- decode thread -----------------------------------------------------------------------

    def _main(self) -> None:
        import torch

        from s1kit.backends.hf import DecodeLoop  # a row whose sampler or machine raises fails alone

        with torch.inference_mode():
            while True:
                loop = DecodeLoop(self._loop_backend, on_step=self._on_step, cancelled=self._cancelled)
                try:
                    loop.run(self._intake, self._done, more=self._more, wait=self._wait)
                    return
                except Exception as err:  # keep serving: fail the batch that crashed, start afresh
                    self.crashes += 1
                    log.exception("decode loop failed; failing its %d sequences", len(self._active))
                    with self._lock:
                        jobs = list(self._active.values())
                        self._active.clear()
                        self._cancelled.clear()
                        stopping = self._stopping
                    for job in jobs:
                        _emit(job, Failed(err))
                    if stopping:
                        return

    def _intake(self, n: int) -> list[tuple[int, Request]]:
        out = []
        with self._lock:
            while self._pending and len(out) < n and not self._stopping:
                tag, job = self._pending.popitem(last=False)
                self._active[tag] = job
                out.append((tag, job.request))
        return out

    def _more(self) -> bool:
        return bool(self._pending) and not self._stopping

    def _wait(self) -> bool:
        with self._cv:
            while not self._pending and not self._stopping:
                self._cv.wait()
            return not self._stopping

    def _on_step(self, tag: int, m: BudgetMachine) -> None:
        job = self._active.get(tag)
        if job is None or job.detok is None or m.done:
            return
        try:
            delta = job.detok.step(m, self._decoder(job))
        except Exception:  # pragma: no cover - a streaming bug must not kill the batch
            log.exception("streaming delta failed")
            return
        if delta is not None:
            delta.tokens = len(m.prompt_suffix()) + len(m.ids)
            _emit(job, delta)

    def _done(self, tag: int, res: SequenceResult | BaseException) -> None:
        with self._lock:
            job = self._active.pop(tag, None)
            self._cancelled.discard(tag)
        if job is None:
            return
        fault = getattr(job.machine, "fault", None)
        if isinstance(res, BaseException) or fault is not None:
            self.failed_alone += 1
            _emit(job, Failed(fault if fault is not None else res))
        else:
            self._finish(job, res)

    def _finish(self, job: Job, res: SequenceResult) -> None:
        try:
            m = job.machine
            reasoning, content, full = final_texts(m, self._decoder(job), job.include_stop)
            if job.detok is not None:
                delta = job.detok.finish(reasoning, content, full)
                if delta is not None:
                    delta.tokens = len(m.prompt_suffix()) + len(m.ids)
                    _emit(job, delta)
            ids = list(m.prompt_suffix()) + list(m.ids)
            self.finish_counts[res.finish_reason] += 1
            _emit(job, Finished(res, reasoning, content, full, ids))
        except Exception as err:  # pragma: no cover
            log.exception("finishing a job failed")
            _emit(job, Failed(err))

    def score(self, ids: Sequence[int], top: int, chunk: int = 256) -> list[tuple[float, list[tuple[int, float]]]]:
        """Log-probabilities of ids[1:] given what precedes each, with the ``top`` best ids at
        each position (one forward pass; the LM head applied in chunks to bound memory)."""
        import torch

        model, dev = self.backend.model, self.backend.device
        with self._score_lock, torch.inference_mode():
            x = torch.tensor([list(ids)], dtype=torch.long, device=dev)
            hidden = model(input_ids=x, output_hidden_states=True, logits_to_keep=1).hidden_states[-1][0, :-1]
            head, out = model.get_output_embeddings(), []
            for start in range(0, hidden.shape[0], chunk):
                lp = torch.log_softmax(head(hidden[start:start + chunk]).float(), dim=-1)
                nxt = x[0, start + 1:start + 1 + lp.shape[0]]
                chosen = lp.gather(1, nxt[:, None])[:, 0].tolist()
                vals, idx = lp.topk(max(1, top), dim=-1)
                for c, v, i in zip(chosen, vals.tolist(), idx.tolist()):
                    out.append((c, list(zip(i, v))))
        return out

    def _decoder(self, job: Job) -> Callable[[Sequence[int]], str]:
        if not job.skip_special_tokens:
            return self.codec.decode
        tok = self.tokenizer
        return lambda ids: tok.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)


def _emit(job: Job, event: Event) -> None:
    try:
        job.sink(event)
    except Exception:  # a closed event loop or a gone client must not stop the decode thread
        log.debug("dropping an event for a job whose receiver is gone", exc_info=True)
